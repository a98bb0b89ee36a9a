package bench

import (
	"strings"
	"time"

	"github.com/vmihailenco/msgpack/v5"
)

// Payload is the body of every benchmark job, encoded with MessagePack.
type Payload struct {
	// Seq numbers the jobs of a run from 0; it indexes the latency table.
	Seq int `msgpack:"seq" json:"seq"`
	// SentAt is when the job was encoded for publishing, in Unix
	// nanoseconds.
	SentAt int64 `msgpack:"sent_at" json:"sent_at"`
	// Data is filler that brings the payload to its configured size.
	Data string `msgpack:"data" json:"data"`
}

// MinPayloadBytes is the smallest payload Config.PayloadBytes may ask for:
// a Payload with the largest sequence number and no filler.
var MinPayloadBytes = encodedSize(Payload{Seq: MaxJobs, SentAt: time.Now().UnixNano()})

func encodedSize(p Payload) int {
	b, err := msgpack.Marshal(&p)
	if err != nil {
		panic("bench: encode payload: " + err.Error()) // a fixed struct of a string and two ints always encodes
	}
	return len(b)
}

// filler returns the Data that brings a payload of the run's last sequence
// number to about size bytes.
func filler(size, jobs int) string {
	base := encodedSize(Payload{Seq: jobs - 1, SentAt: time.Now().UnixNano()})
	n := max(size-base, 0)
	// A longer string takes a longer length prefix (fixstr, str8, str16,
	// str32): shrink the filler until the whole fits.
	for n > 0 && encodedSize(Payload{Seq: jobs - 1, SentAt: time.Now().UnixNano(), Data: strings.Repeat("x", n)}) > size {
		n--
	}
	return strings.Repeat("x", n)
}

// stampedPayload is a Payload whose SentAt is taken when it is encoded. The
// warren runner publishes it: broker.Publisher encodes a job's payload just
// before sending it, so the timestamp is taken at the same point of the
// publish path as the baseline's, which stamps and encodes each message
// right before publishing it. Without this, jobs would be stamped when their
// batch is built, charging the wait inside PublishBatch to the latency.
type stampedPayload struct {
	seq  int
	data string
}

var _ msgpack.CustomEncoder = stampedPayload{}

// EncodeMsgpack implements msgpack.CustomEncoder.
func (p stampedPayload) EncodeMsgpack(enc *msgpack.Encoder) error {
	return enc.Encode(&Payload{Seq: p.seq, SentAt: time.Now().UnixNano(), Data: p.data})
}
