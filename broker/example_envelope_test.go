package broker_test

import (
	"fmt"
	"log"
	"time"

	"github.com/warrenmq/warren/broker"
)

// A job is validated and encoded once, by NewEnvelope; Message gives
// the AMQP message to send. (broker.Publisher does both, and waits for the
// broker's confirm.)
func ExampleNewEnvelope() {
	type SendEmail struct {
		To string `json:"to"`
	}
	env, err := broker.NewEnvelope(broker.Job{
		ID:      "01a20cff-7d00-7a3c-8e21-5b0c2f9d4a01", // usually left empty: a UUIDv7 is generated
		Type:    "email.send",
		Payload: SendEmail{To: "ada@example.com"},
		Headers: map[string]any{"tenant": "acme", "retries_allowed": 5},
	})
	if err != nil {
		log.Fatal(err)
	}
	msg := env.Message()
	fmt.Println("content_type: ", msg.ContentType)
	fmt.Println("message_id:   ", msg.MessageID)
	fmt.Println("type:         ", msg.Type)
	fmt.Println("timestamp:    ", "now, in whole seconds:", time.Since(msg.Timestamp) < time.Minute && msg.Timestamp.Nanosecond() == 0)
	fmt.Println("delivery_mode:", msg.DeliveryMode)
	for _, name := range []string{"retries_allowed", "tenant"} {
		fmt.Printf("header %s: %T %v\n", name, msg.Headers[name], msg.Headers[name])
	}
	_, written := msg.Headers[broker.HeaderAttempt]
	fmt.Println("warren-attempt written:", written, "(absent means the first attempt)")
	fmt.Printf("body: % x\n", msg.Body)
	// Output:
	// content_type:  application/msgpack
	// message_id:    01a20cff-7d00-7a3c-8e21-5b0c2f9d4a01
	// type:          email.send
	// timestamp:     now, in whole seconds: true
	// delivery_mode: 2
	// header retries_allowed: int64 5
	// header tenant: string acme
	// warren-attempt written: false (absent means the first attempt)
	// body: 81 a2 74 6f af 61 64 61 40 65 78 61 6d 70 6c 65 2e 63 6f 6d
}

// A consumer reads the envelope from the message, then decodes the body
// into the job's payload type. Either step failing means the message can
// never be handled: dead-letter it. (A Consumer does the first step for
// every delivery.)
func ExampleMessage_Envelope() {
	msg := broker.Message{ // as a consumer receives it
		ContentType: "application/msgpack",
		MessageID:   "01a20cff-7d00-7d9e-b0a7-3c1f8e2d5b04",
		Type:        "email.send",
		Timestamp:   time.Unix(1795514400, 0),
		Headers: broker.Table{
			"warren-attempt":     int64(3),
			"warren-error":       "smtp: 451 4.7.1 try again later",
			"warren-error-class": "transient",
			"warren-failed-at":   "2026-11-24T10:00:35.125Z",
		},
		Body: []byte{
			0x82,           // map of 2
			0xa2, 't', 'o', // "to"
			0xaf, 'a', 'd', 'a', '@', 'e', 'x', 'a', 'm', 'p', 'l', 'e', '.', 'c', 'o', 'm', // "ada@example.com"
			0xa6, 'r', 'u', 'n', '_', 'a', 't', // "run_at"
			0xd6, 0xff, 0x6b, 0x05, 0x59, 0x18, // timestamp 1795512600
		},
	}
	env, err := msg.Envelope()
	if err != nil {
		log.Fatal(err) // errors.Is(err, broker.ErrMalformedEnvelope) etc.: dead-letter
	}
	var p struct {
		To    string    `json:"to"`
		RunAt time.Time `json:"run_at"`
	}
	if err := env.Decode(&p); err != nil {
		log.Fatal(err) // errors.Is(err, broker.ErrBadBody): dead-letter
	}
	fmt.Println(env.Type, "attempt", env.Attempt)
	fmt.Println("last failure:", env.Failure.Error, "at", env.Failure.FailedAt.Format(time.RFC3339Nano))
	fmt.Println("to:", p.To, "run at:", p.RunAt.UTC().Format(time.RFC3339))
	// Output:
	// email.send attempt 3
	// last failure: smtp: 451 4.7.1 try again later at 2026-11-24T10:00:35.125Z
	// to: ada@example.com run at: 2026-11-24T09:30:00Z
}

// CheckBody rejects hostile bodies before any decoder sees them.
func ExampleCheckBody() {
	bodies := [][]byte{
		{0xdd, 0xff, 0xff, 0xff, 0xff}, // array32 of 4294967295 elements
		{0x91, 0x91, 0x91, 0xc0},       // [[[nil]]]
	}
	for _, b := range bodies {
		fmt.Println(broker.CheckBody(b, broker.Limits{MaxDepth: 2}))
	}
	// Output:
	// broker: bad message body: offset 0: array32 (dd) declares 4294967295 element(s) but only 0 byte(s) remain
	// broker: bad message body: offset 2: arrays and maps nest deeper than 2 (Limits.MaxDepth)
}
