package deadletter_test

import (
	"bytes"
	"fmt"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/warrenmq/warren/broker"
	"github.com/warrenmq/warren/deadletter"
)

// A record is one line of an export file: the message exactly as it was
// delivered, each header with its AMQP type, the body in base64, and a few
// fields derived for people reading the file (id, type, class, error).
// What a Decoder reads back publishes the same message.
func ExampleEncoder() {
	msg := broker.Message{
		ContentType:  "application/msgpack",
		DeliveryMode: 2, // persistent
		MessageID:    "0193d2a4",
		Type:         "email.send",
		Timestamp:    time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC),
		Headers: broker.Table{
			"warren-attempt":     int64(3),
			"warren-error":       "smtp: 550 no such user",
			"warren-error-class": "permanent",
			"tenant":             []byte("acme"),
			"ratio":              float32(0.5),
		},
		Body: []byte{0x81, 0xa2, 't', 'o', 0xa0}, // {"to": ""} in MessagePack
	}
	var file bytes.Buffer
	if err := deadletter.NewEncoder(&file).Encode(deadletter.NewRecord("emails.dlq", msg)); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Print(file.String())

	rec, err := deadletter.NewDecoder(&file).Decode()
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("same message:", cmp.Equal(rec.Message(), msg))
	// Output:
	// {"version":1,"queue":"emails.dlq","id":"0193d2a4","type":"email.send","class":"permanent","error":"smtp: 550 no such user","properties":{"content_type":"application/msgpack","delivery_mode":2,"message_id":"0193d2a4","timestamp":"2026-11-24T10:00:00Z","type":"email.send"},"headers":{"ratio":{"t":"float32","v":0.5},"tenant":{"t":"bytes","v":"YWNtZQ=="},"warren-attempt":{"t":"int64","v":"3"},"warren-error":{"t":"string","v":"smtp: 550 no such user"},"warren-error-class":{"t":"string","v":"permanent"}},"body":"gaJ0b6A="}
	// same message: true
}
