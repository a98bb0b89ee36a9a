package main

import (
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/warrenmq/warren/broker"
	"github.com/warrenmq/warren/deadletter"
	"github.com/warrenmq/warren/internal/brokertest"
	"github.com/warrenmq/warren/internal/brokertest/rawmsg"
	"github.com/warrenmq/warren/internal/testkit"
)

// readRecords reads an export file.
func readRecords(t *testing.T, path string) []deadletter.Record {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	return decodeRecords(t, f)
}

func decodeRecords(t *testing.T, r io.Reader) []deadletter.Record {
	t.Helper()
	var recs []deadletter.Record
	dec := deadletter.NewDecoder(r)
	for {
		rec, err := dec.Decode()
		if errors.Is(err, io.EOF) {
			return recs
		}
		if err != nil {
			t.Fatal(err)
		}
		recs = append(recs, rec)
	}
}

func ids(recs []deadletter.Record) []string {
	out := make([]string, len(recs)) // not nil: compared with empty lists
	for i, r := range recs {
		out[i] = r.ID
	}
	return out
}

func publishings(recs []deadletter.Record) []amqp.Publishing {
	out := make([]amqp.Publishing, len(recs))
	for i, r := range recs {
		out[i] = rawmsg.Publishing(r.Message())
	}
	return out
}

// rawDLQ declares a classic dead-letter queue holding, in order: a message
// with every property and headers of several AMQP types, published with
// amqp091-go alone; one with a binary body; one the broker dead-lettered
// itself (with x-death). It returns the queue and the messages published
// directly.
func rawDLQ(t *testing.T) (dlq string, sent []amqp.Publishing) {
	t.Helper()
	dlq, work := brokertest.Name(t, "dlq"), brokertest.Name(t, "work")
	ch := brokertest.Channel(t)
	if _, err := ch.QueueDeclare(dlq, true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := ch.QueueDeclare(work, true, false, false, false, amqp.Table{"x-dead-letter-exchange": "", "x-dead-letter-routing-key": dlq}); err != nil {
		t.Fatal(err)
	}
	brokertest.DeleteQueuesAtCleanup(t, dlq, work)
	sent = []amqp.Publishing{
		{
			ContentType: "application/msgpack", ContentEncoding: "identity", DeliveryMode: amqp.Transient, Priority: 1,
			CorrelationId: "c-1", ReplyTo: "replies", Expiration: "86400000", MessageId: "typed-1",
			Timestamp: time.Unix(1795514400, 0), Type: "email.send", UserId: "guest", AppId: "legacy",
			Headers: amqp.Table{
				"warren-attempt": int16(2), "warren-error": []byte("as bytes"), "warren-error-class": "permanent",
				"i8": int8(-5), "u8": uint8(5), "i32": int32(1 << 30), "u32": uint32(1 << 31), "i64": int64(-1) << 62,
				"f32": float32(0.1), "f64": 0.1, "dec": amqp.Decimal{Scale: 2, Value: 995}, "ok": true,
				"t": time.Unix(1600000000, 0), "v": nil, "s": "ü", "list": []any{"a", int64(1), amqp.Table{"k": []byte{1}}},
			},
			Body: []byte{0x81, 0xa2, 't', 'o', 0xa0},
		},
		{MessageId: "binary-1", Type: "blob", ContentType: "application/octet-stream", Body: []byte{0xff, 0xfe, 0x00, 0xc1, '\n', '\r'}},
	}
	for _, m := range append(sent, amqp.Publishing{MessageId: "rejected-1", Type: "email.send", ContentType: "application/msgpack", Body: []byte{0x80}}) {
		q := dlq
		if m.MessageId == "rejected-1" {
			q = work
		}
		if err := ch.PublishWithContext(brokertest.Context(t, 5*time.Second), "", q, true, false, m); err != nil {
			t.Fatal(err)
		}
	}
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		d, ok, err := ch.Get(work, false)
		if err != nil {
			t.Fatal(err)
		}
		if ok {
			if err := d.Reject(false); err != nil {
				t.Fatal(err)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("nothing to reject")
		}
	}
	testkit.WaitDepth(t, dlq, 3, 5*time.Second)
	return dlq, sent
}

func TestDLQExportPurgeImportRoundTrip(t *testing.T) {
	dlq, sent := rawDLQ(t)
	dir := t.TempDir()
	exported, purged, again := filepath.Join(dir, "export.ndjson"), filepath.Join(dir, "purged.ndjson"), filepath.Join(dir, "again.ndjson")

	code, out, errOut := warren(t, "dlq", "export", dlq, exported)
	if code != 0 || !strings.Contains(out, "exported 3 of 3") {
		t.Fatalf("export: exit %d\n%s%s", code, out, errOut)
	}
	before := readRecords(t, exported)
	if diff := cmp.Diff([]string{"typed-1", "binary-1", "rejected-1"}, ids(before)); diff != "" {
		t.Fatalf("exported ids (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(sent, publishings(before[:2])); diff != "" {
		t.Errorf("exported messages (-published +exported):\n%s", diff)
	}
	if d, ok := before[2].Headers["x-death"].([]any); !ok || len(d) != 1 || before[2].Class != "rabbitmq:rejected" {
		t.Errorf("the broker's dead letter: x-death %#v, class %q", before[2].Headers["x-death"], before[2].Class)
	}
	if got := brokertest.Depth(t, dlq); got != 3 {
		t.Fatalf("export removed jobs: %d left of 3", got)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("the export left files behind: %v", entries)
	}

	code, out, errOut = warren(t, "dlq", "purge", dlq, "--yes", "--export", purged)
	if code != 0 || !strings.Contains(out, "deleted 3 job(s)") || !strings.Contains(out, purged) {
		t.Fatalf("purge --export: exit %d\n%s%s", code, out, errOut)
	}
	if diff := cmp.Diff(publishings(before), publishings(readRecords(t, purged))); diff != "" {
		t.Errorf("purge --export wrote (-export +purge):\n%s", diff)
	}
	if got := brokertest.Depth(t, dlq); got != 0 {
		t.Fatalf("%d jobs left after the purge", got)
	}

	code, out, errOut = warren(t, "--json", "dlq", "import", exported)
	var res struct {
		Imported int
		Failed   []struct{ Line int }
	}
	if code != 0 || json.Unmarshal([]byte(out), &res) != nil || res.Imported != 3 || len(res.Failed) != 0 {
		t.Fatalf("import: exit %d\n%s%s", code, out, errOut)
	}
	if code, out, errOut := warren(t, "dlq", "export", dlq, again); code != 0 {
		t.Fatalf("second export: exit %d\n%s%s", code, out, errOut)
	}
	after := readRecords(t, again)
	if diff := cmp.Diff(publishings(before[:2]), publishings(after[:2])); diff != "" {
		t.Errorf("imported messages differ from the exported ones (-exported +imported):\n%s", diff)
	}
	// The broker's x-death is not sent back; warren's headers say the same.
	if r := after[2]; r.ID != "rejected-1" || r.Class != before[2].Class || r.Error != before[2].Error || r.Headers["x-death"] != nil {
		t.Errorf("the broker's dead letter came back as id %q class %q error %q x-death %v; exported as class %q error %q",
			r.ID, r.Class, r.Error, r.Headers["x-death"], before[2].Class, before[2].Error)
	}
}

// listOrder is the order of the jobs of queue, as dlq list shows them.
func listOrder(t *testing.T, queue string) []string {
	t.Helper()
	code, out, _ := warren(t, "--json", "dlq", "list", queue)
	var list struct{ Jobs []dlqJob }
	if code != 0 || json.Unmarshal([]byte(out), &list) != nil {
		t.Fatalf("list: %s", out)
	}
	var order []string
	for _, j := range list.Jobs {
		order = append(order, j.ID)
	}
	return order
}

func TestDLQExportFiltersAndKeepsTheQueue(t *testing.T) {
	dlq, _, _ := fillDLQ(t)
	order := listOrder(t, dlq) // the workers park jobs in any order
	for _, tc := range []struct {
		args []string
		want []string // sorted
		n    int      // when set: n of want (the order of perm-1 and perm-2 is the workers')
	}{
		{args: []string{"--class", "permanent"}, want: []string{"perm-1", "perm-2"}},
		{args: []string{"--type", "sms.send"}, want: []string{"unknown-1"}},
		{args: []string{"--class", "rabbitmq:rejected"}, want: []string{"rejected-1"}},
		{args: []string{"--error", "no recipient", "--limit", "1"}, want: []string{"perm-1", "perm-2"}, n: 1},
		{args: []string{"--older-than", "1h"}, want: []string{}},
	} {
		code, out, errOut := warren(t, append([]string{"dlq", "export", dlq, "-"}, tc.args...)...)
		if code != 0 {
			t.Fatalf("%v: exit %d\n%s", tc.args, code, errOut)
		}
		recs := decodeRecords(t, strings.NewReader(out))
		got := ids(recs)
		slices.Sort(got)
		if tc.n > 0 {
			if len(got) != tc.n || !slices.Contains(tc.want, got[0]) {
				t.Errorf("%v exported %v, want %d of %v", tc.args, got, tc.n, tc.want)
			}
		} else if diff := cmp.Diff(tc.want, got); diff != "" {
			t.Errorf("%v exported (-want +got):\n%s", tc.args, diff)
		}
		for _, r := range recs {
			if r.Queue != dlq {
				t.Errorf("%s: queue %q, want %q", r.ID, r.Queue, dlq)
			}
		}
		if !strings.Contains(errOut, "to stdout") {
			t.Errorf("the summary should go to stderr when the records go to stdout: %q", errOut)
		}
	}
	if d := brokertest.Depth(t, dlq); d != 4 {
		t.Errorf("export removed jobs: %d left of 4", d)
	}
	if diff := cmp.Diff(order, listOrder(t, dlq)); diff != "" {
		t.Errorf("order after the exports (-before +after):\n%s", diff)
	}
}

func TestDLQPurgeExportWritesExactlyTheDeleted(t *testing.T) {
	dlq, _, _ := fillDLQ(t)
	path := filepath.Join(t.TempDir(), "purged.ndjson")

	code, out, errOut := warren(t, "--json", "dlq", "purge", dlq, "--class", "permanent", "--yes", "--export", path)
	var res struct {
		Deleted, Kept int
		Export        string
	}
	if code != 0 || json.Unmarshal([]byte(out), &res) != nil || res.Deleted != 2 || res.Kept != 2 || res.Export != path {
		t.Fatalf("purge --export: exit %d\n%s%s", code, out, errOut)
	}
	recs := readRecords(t, path)
	got := ids(recs)
	slices.Sort(got) // the workers park them in any order
	if diff := cmp.Diff([]string{"perm-1", "perm-2"}, got); diff != "" {
		t.Errorf("exported (-want +got):\n%s", diff)
	}
	for _, r := range recs {
		if r.Class != "permanent" || r.ExportedAt.IsZero() || r.Queue != dlq || len(r.Body) == 0 {
			t.Errorf("record %s: class %q, exported at %v, queue %q, body %x", r.ID, r.Class, r.ExportedAt, r.Queue, r.Body)
		}
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("export file: %v, mode %v; want 0600 (dead letters may hold personal data)", err, fi.Mode())
	}
	if d := brokertest.Depth(t, dlq); d != 2 {
		t.Errorf("%d jobs left, want 2", d)
	}

	// An existing file is never overwritten, and stdout is no place for
	// evidence: nothing is deleted.
	for _, target := range []string{path, "-"} {
		code, _, errOut = warren(t, "dlq", "purge", dlq, "--yes", "--export", target)
		if code != 1 || !strings.Contains(errOut, "nothing deleted") && !strings.Contains(errOut, "needs a file") {
			t.Errorf("purge --export %s: exit %d, %s", target, code, errOut)
		}
	}
	if d := brokertest.Depth(t, dlq); d != 2 {
		t.Errorf("a refused purge deleted jobs: %d left, want 2", d)
	}
}

// writeLines writes an export file of lines.
func writeLines(t *testing.T, lines ...string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "in.ndjson")
	if err := os.WriteFile(path, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func recordLine(t *testing.T, queue, id string) string {
	t.Helper()
	b, err := deadletter.NewRecord(queue, broker.Message{MessageID: id, Type: "x", Body: []byte(id)}).MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestDLQImportFailures(t *testing.T) {
	target := brokertest.Name(t, "target")
	if _, err := brokertest.Channel(t).QueueDeclare(target, true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	brokertest.DeleteQueuesAtCleanup(t, target)
	missing := brokertest.Name(t, "missing")

	t.Run("queue that does not exist", func(t *testing.T) {
		path := writeLines(t, recordLine(t, missing, "a"), recordLine(t, target, "b"))
		code, out, errOut := warren(t, "dlq", "import", path)
		if code != 1 || !strings.Contains(out, "imported 1 job(s), failed 1") {
			t.Fatalf("exit %d\n%s%s", code, out, errOut)
		}
		if !strings.Contains(errOut, "line 1: job a") || !strings.Contains(errOut, "no queue \""+missing+"\"") || !strings.Contains(errOut, "--to") {
			t.Errorf("stderr should name the line, the job, the queue and --to: %s", errOut)
		}
		if d := brokertest.Get(t, target, 5*time.Second); d.MessageId != "b" {
			t.Errorf("imported %s, want b", d.MessageId)
		}

		code, out, errOut = warren(t, "dlq", "import", path, "--to", missing)
		if code != 1 || !strings.Contains(out, "imported 0 job(s), failed 2") || !strings.Contains(errOut, "unroutable") {
			t.Errorf("--to a missing queue: exit %d\n%s%s", code, out, errOut)
		}
		if code, _, errOut := warren(t, "dlq", "import", path, "--exchange", missing, "--key", "k"); code != 1 || !strings.Contains(errOut, "exchange does not exist") {
			t.Errorf("--exchange that does not exist: exit %d, %s", code, errOut)
		}
	})

	t.Run("bad line imports nothing from a file", func(t *testing.T) {
		path := writeLines(t, recordLine(t, target, "a"), `{"version":1,"queue":`, recordLine(t, target, "c"))
		code, out, errOut := warren(t, "dlq", "import", path)
		if code != 1 || !strings.Contains(errOut, "line 2:") || !strings.Contains(errOut, "nothing imported") {
			t.Fatalf("exit %d\n%s%s", code, out, errOut)
		}
		if d := brokertest.Depth(t, target); d != 0 {
			t.Errorf("%d jobs imported from a file with a bad line", d)
		}
		code, out, _ = warren(t, "--json", "dlq", "import", path, "--dry-run")
		var res struct {
			StoppedAtLine int `json:"stopped_at_line"`
			Error         string
		}
		if code != 1 || json.Unmarshal([]byte(out), &res) != nil || res.StoppedAtLine != 2 || !strings.Contains(res.Error, "line 2") {
			t.Errorf("--json --dry-run: exit %d, %s", code, out)
		}
	})

	t.Run("bad line stops an import from stdin", func(t *testing.T) {
		r, w, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		stdin := os.Stdin
		os.Stdin = r
		defer func() { os.Stdin = stdin; r.Close() }()
		in := recordLine(t, target, "a") + "\n" + recordLine(t, target, "b") + "\n{nope\n" + recordLine(t, target, "d") + "\n"
		go func() {
			w.WriteString(in)
			w.Close()
		}()
		code, out, errOut := warren(t, "dlq", "import", "-")
		if code != 1 || !strings.Contains(out, "imported 2 job(s)") || !strings.Contains(errOut, "line 3:") || !strings.Contains(errOut, "imported 2 job(s) before it, read nothing after it") {
			t.Fatalf("exit %d\n%s%s", code, out, errOut)
		}
		for _, want := range []string{"a", "b"} {
			if d := brokertest.Get(t, target, 5*time.Second); d.MessageId != want {
				t.Errorf("imported %s, want %s", d.MessageId, want)
			}
		}
		if d := brokertest.Depth(t, target); d != 0 {
			t.Errorf("%d jobs imported after the bad line", d)
		}
	})

	t.Run("dry run publishes nothing", func(t *testing.T) {
		path := writeLines(t, recordLine(t, target, "a"), recordLine(t, "", "b"))
		code, out, errOut := warren(t, "dlq", "import", path, "--dry-run")
		if code != 1 || !strings.Contains(out, "1 job(s) to import, 1 that would fail") || !strings.Contains(errOut, "line 2: job b") {
			t.Errorf("exit %d\n%s%s", code, out, errOut)
		}
		if code, out, errOut := warren(t, "dlq", "import", path, "--dry-run", "--to", target); code != 0 || !strings.Contains(out, "2 job(s) to import, 0 that would fail") {
			t.Errorf("with --to: exit %d\n%s%s", code, out, errOut)
		}
		if d := brokertest.Depth(t, target); d != 0 {
			t.Errorf("a dry run imported %d jobs", d)
		}
	})

	t.Run("flags", func(t *testing.T) {
		path := writeLines(t, recordLine(t, target, "a"))
		for _, args := range [][]string{{"--to", target, "--exchange", "x"}, {"--key", "k"}} {
			if code, _, errOut := warren(t, append([]string{"dlq", "import", path}, args...)...); code != 1 || !strings.Contains(errOut, "--") {
				t.Errorf("%v: exit %d, %s", args, code, errOut)
			}
		}
	})
}
