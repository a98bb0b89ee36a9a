// Package asyncapi writes an AsyncAPI 3.0.0 document of a system's jobs
// from its topology file and the contracts the file declares: what
// `warren asyncapi` prints.
//
// The document has
//   - a channel per exchange the file declares (and per built-in exchange a
//     route names), with the AMQP channel binding (is: routingKey) and an
//     address parameter listing the routing keys the routes publish with;
//   - a channel per work queue (is: queue), with warren's own attributes
//     under x-warren: queue type, dead-letter and quarantine queues,
//     delivery limit and retry policy;
//   - a message per job type and contract version (tripBookV2 for version 2
//     of trip.book), its payload the version's schema, its headers the
//     warren-version header, its AMQP message binding the job type;
//   - per routed job type, a send operation on its route's exchange and a
//     receive operation on each work queue the route reaches, as RabbitMQ
//     would route it (topology.Topology.QueuesFor).
//
// The entities warren derives for retries, delays and dead letters are
// left out: they are warren's, not the system's interface.
//
// A payload schema is written as an AsyncAPI Schema Object, AsyncAPI 3's
// default schema format: a superset of JSON Schema draft 7 that also has
// deprecated. Package contract accepts only keywords that mean the same in
// draft 2020-12, in which contracts are written, and in draft 7, so the
// schema needs no translation.
//
// The output is deterministic: the same files and options give the same
// bytes, so a generated document can be committed and checked for drift.
package asyncapi

import (
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode"

	amqp "github.com/rabbitmq/amqp091-go"
	yaml "go.yaml.in/yaml/v3"

	"github.com/warrenmq/warren/contract"
	"github.com/warrenmq/warren/topology"
)

// Version is the AsyncAPI version of the documents Generate writes.
const Version = "3.0.0"

// BindingVersion is the version of the AMQP bindings the documents use.
const BindingVersion = "0.3.0"

// ContentType is the content type of every job's payload (MessagePack).
const ContentType = "application/msgpack"

// SchemaFormat is the format of the payload schemas: AsyncAPI Schema
// Objects (see the package documentation).
const SchemaFormat = "application/vnd.aai.asyncapi;version=" + Version

// Format is the encoding of the document.
type Format string

// The formats Generate writes.
const (
	YAML Format = "yaml"
	JSON Format = "json"
)

// Options are the parts of the document the files do not say.
type Options struct {
	// Title is info.title; empty: the name of the topology file's
	// directory (or of the file, when it is not named topology.yaml)
	// followed by " jobs".
	Title string
	// Version is info.version, the version of the system's interface;
	// empty: "1.0.0".
	Version string
	// Description is info.description; empty: a sentence saying what the
	// document holds.
	Description string
	// Servers are broker URLs, amqp:// or amqps://, each optionally
	// preceded by a name and "=" (prod=amqps://broker.example:5671/jobs);
	// unnamed servers are named rabbitmq, rabbitmq2, ... A URL's user and
	// password are never written. The virtual host of the servers, when
	// they agree on one, is written in the channel bindings.
	Servers []string
	// Format is YAML (the default) or JSON.
	Format Format
}

// ErrNoTopology is returned, wrapped, by Generate for a set read from a
// contracts file: without a topology, no channel or operation is known.
var ErrNoTopology = errors.New("asyncapi: the contracts have no topology")

// Generate writes the AsyncAPI document of set, which must have been read
// from a topology file (contract.Load of the topology file, not of a
// contracts file it includes).
func Generate(set *contract.Set, opts Options) ([]byte, error) {
	if set == nil || set.Topology == nil {
		return nil, fmt.Errorf("%w: they were read from a contracts file; pass the topology file that includes it, whose routes and queues say where each job type goes", ErrNoTopology)
	}
	switch opts.Format {
	case "", YAML, JSON:
	default:
		return nil, fmt.Errorf("asyncapi: unknown format %q; use %q or %q", opts.Format, YAML, JSON)
	}
	servers, err := parseServers(opts.Servers)
	if err != nil {
		return nil, err
	}
	g := &generator{set: set, t: set.Topology, opts: opts, servers: servers}
	doc := g.document()
	root := &yaml.Node{Kind: yaml.DocumentNode, Content: []*yaml.Node{doc.n}}
	if opts.Format == JSON {
		return encodeJSON(root)
	}
	return encodeYAML(root)
}

// server is a broker of Options.Servers.
type server struct {
	name, scheme, host, vhost string
}

func parseServers(specs []string) ([]server, error) {
	var out []server
	seen := map[string]bool{}
	for i, spec := range specs {
		name, raw := "", spec
		if eq := strings.Index(spec, "="); eq >= 0 && !strings.Contains(spec[:eq], "://") {
			name, raw = spec[:eq], spec[eq+1:]
			if !validKey(name) {
				return nil, fmt.Errorf("asyncapi: server name %q: use letters, digits, '.', '-' and '_' only", name)
			}
		}
		if name == "" {
			name = "rabbitmq"
			if i > 0 {
				name += strconv.Itoa(i + 1)
			}
		}
		if seen[name] {
			return nil, fmt.Errorf("asyncapi: two servers are named %q; name them apart: NAME=amqp://host:5672/vhost", name)
		}
		seen[name] = true
		u, err := amqp.ParseURI(raw)
		if err != nil {
			// The parser's text may quote the URL, password and all.
			return nil, fmt.Errorf("asyncapi: server %q: %s; write it as amqp://host:5672/vhost or amqps://host:5671/vhost",
				redact(raw), redactIn(err.Error(), raw))
		}
		out = append(out, server{name: name, scheme: u.Scheme, host: u.Host + ":" + strconv.Itoa(u.Port), vhost: u.Vhost})
	}
	return out, nil
}

// redact drops the user information of an URL for an error message.
func redact(raw string) string {
	scheme, rest, ok := strings.Cut(raw, "://")
	if !ok {
		return raw
	}
	if at := strings.LastIndex(rest, "@"); at >= 0 {
		rest = rest[at+1:]
	}
	return scheme + "://" + rest
}

// redactIn removes the user information of raw from msg.
func redactIn(msg, raw string) string {
	msg = strings.ReplaceAll(msg, raw, redact(raw))
	_, rest, _ := strings.Cut(raw, "://")
	if at := strings.LastIndex(rest, "@"); at > 0 {
		msg = strings.ReplaceAll(msg, rest[:at], "…")
	}
	return msg
}

func validKey(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if !(r < unicode.MaxASCII && (unicode.IsLetter(r) || unicode.IsDigit(r)) || r == '.' || r == '-' || r == '_') {
			return false
		}
	}
	return true
}

type generator struct {
	set     *contract.Set
	t       *topology.Topology
	opts    Options
	servers []server

	// messages: the keys of each job type's messages, by version (0 for
	// a routed type without contract).
	messages map[string]map[int]string
	// exchangeChannel and queueChannel: channel keys by entity name.
	exchangeChannel map[string]string
	queueChannel    map[string]string
	// reaches: the work queues each routed job type reaches; nil for a
	// type whose queues cannot be known (a headers exchange on the way).
	reaches map[string][]string
}

func (g *generator) document() mapping {
	g.resolve()
	doc := newMapping().
		set("asyncapi", Version).
		set("info", g.info())
	if len(g.servers) > 0 {
		doc.set("servers", g.serverObjects())
	}
	doc.set("defaultContentType", ContentType)
	doc.set("channels", g.channels())
	doc.set("operations", g.operations())
	doc.set("components", newMapping().set("messages", g.componentMessages()))
	return doc
}

// jobTypes returns every job type, with a contract or a route, sorted.
func (g *generator) jobTypes() []string {
	names := g.set.Names()
	for _, jt := range g.t.JobTypes() {
		if _, ok := g.set.Types[jt]; !ok {
			names = append(names, jt)
		}
	}
	sort.Strings(names)
	return names
}

// resolve names every message and channel and finds the queues each route
// reaches.
func (g *generator) resolve() {
	msgKeys := newKeys()
	g.messages = map[string]map[int]string{}
	for _, jt := range g.jobTypes() {
		g.messages[jt] = map[int]string{}
		ct, ok := g.set.Types[jt]
		if !ok {
			g.messages[jt][0] = msgKeys.take(camel(jt))
			continue
		}
		for _, n := range ct.Numbers() {
			g.messages[jt][n] = msgKeys.take(camel(jt) + "V" + strconv.Itoa(n))
		}
	}
	chanKeys := newKeys()
	g.exchangeChannel = map[string]string{}
	for _, x := range g.exchanges() {
		g.exchangeChannel[x.Name] = chanKeys.take(camel(x.Name) + "Exchange")
	}
	g.queueChannel = map[string]string{}
	for _, q := range g.t.WorkQueues() {
		g.queueChannel[q.Name] = chanKeys.take(camel(q.Name) + "Queue")
	}
	g.reaches = map[string][]string{}
	for _, jt := range g.t.JobTypes() {
		qs, err := g.t.QueuesFor(jt)
		if err != nil {
			continue // through a headers exchange: the headers decide
		}
		g.reaches[jt] = qs
	}
}

// exchanges returns the exchanges of the document: the file's, in file
// order, then the built-in ones routes name, sorted.
func (g *generator) exchanges() []topology.Exchange {
	var out []topology.Exchange
	for _, x := range g.t.Exchanges {
		if !x.Derived {
			out = append(out, x)
		}
	}
	var builtin []string
	for _, jt := range g.t.JobTypes() {
		name := g.t.Routes[jt].Exchange
		if _, declared := g.t.Exchange(name); declared || slices.Contains(builtin, name) {
			continue
		}
		if _, ok := builtinKinds[name]; ok {
			builtin = append(builtin, name)
		}
	}
	sort.Strings(builtin)
	for _, name := range builtin {
		out = append(out, topology.Exchange{Name: name, Kind: builtinKinds[name], Durable: true})
	}
	return out
}

// builtinKinds are the exchanges every RabbitMQ virtual host has that a
// route may name.
var builtinKinds = map[string]string{
	"amq.direct":  topology.KindDirect,
	"amq.fanout":  topology.KindFanout,
	"amq.topic":   topology.KindTopic,
	"amq.headers": topology.KindHeaders,
	"amq.match":   topology.KindHeaders,
}

func (g *generator) info() mapping {
	title := g.opts.Title
	if title == "" {
		title = defaultName(g.set.Files) + " jobs"
	}
	version := g.opts.Version
	if version == "" {
		version = "1.0.0"
	}
	desc := g.opts.Description
	if desc == "" {
		desc = "The jobs of this system as warren dispatches them over RabbitMQ: a channel per exchange and per work queue, " +
			"a message per job type and contract version (payloads are MessagePack), an operation to send each job type " +
			"to its route's exchange and one to receive it from each queue it reaches. " +
			"Written by `warren asyncapi` from the topology file and its contracts; regenerate it rather than edit it."
	}
	return newMapping().set("title", title).set("version", version).set("description", desc)
}

// defaultName names the system after its topology file.
func defaultName(files []string) string {
	if len(files) == 0 {
		return "warren"
	}
	path := files[0]
	base := filepath.Base(path)
	stem := strings.TrimSuffix(base, filepath.Ext(base))
	if stem == "topology" {
		abs, err := filepath.Abs(path)
		if err == nil {
			if dir := filepath.Base(filepath.Dir(abs)); dir != "" && dir != "/" && dir != "." {
				return dir
			}
		}
	}
	return stem
}

func (g *generator) serverObjects() mapping {
	m := newMapping()
	for _, s := range g.servers {
		o := newMapping().set("host", s.host).set("protocol", s.scheme).set("protocolVersion", "0.9.1")
		o.set("pathname", "/"+pathEscape(s.vhost))
		o.set("description", "RabbitMQ, virtual host "+strconv.Quote(s.vhost)+".")
		m.set(s.name, o)
	}
	return m
}

// pathEscape escapes a virtual host for a URL path, as RabbitMQ's URI
// scheme does ("/" is %2F).
func pathEscape(vhost string) string {
	var b strings.Builder
	for _, c := range []byte(vhost) {
		if c < 0x80 && (unicode.IsLetter(rune(c)) || unicode.IsDigit(rune(c)) || strings.IndexByte("-._~", c) >= 0) {
			b.WriteByte(c)
			continue
		}
		fmt.Fprintf(&b, "%%%02X", c)
	}
	return b.String()
}

// vhost is the virtual host the servers agree on; empty when they do not,
// or when there is no server.
func (g *generator) vhost() string {
	if len(g.servers) == 0 {
		return ""
	}
	v := g.servers[0].vhost
	for _, s := range g.servers[1:] {
		if s.vhost != v {
			return ""
		}
	}
	return v
}

func (g *generator) channels() mapping {
	m := newMapping()
	for _, x := range g.exchanges() {
		m.set(g.exchangeChannel[x.Name], g.exchangeChannelObject(x))
	}
	for _, q := range g.t.WorkQueues() {
		m.set(g.queueChannel[q.Name], g.queueChannelObject(q))
	}
	return m
}

// routedTo returns the job types whose route names exchange, sorted.
func (g *generator) routedTo(exchange string) []string {
	var out []string
	for _, jt := range g.t.JobTypes() {
		if g.t.Routes[jt].Exchange == exchange {
			out = append(out, jt)
		}
	}
	return out
}

// channelMessages refers to the component messages of the job types.
func (g *generator) channelMessages(types []string) mapping {
	m := newMapping()
	for _, jt := range types {
		for _, key := range g.messageKeys(jt) {
			m.set(key, ref("#/components/messages/"+key))
		}
	}
	return m
}

// messageKeys returns the keys of a job type's messages, by version.
func (g *generator) messageKeys(jt string) []string {
	versions := make([]int, 0, len(g.messages[jt]))
	for n := range g.messages[jt] {
		versions = append(versions, n)
	}
	slices.Sort(versions)
	keys := make([]string, 0, len(versions))
	for _, n := range versions {
		keys = append(keys, g.messages[jt][n])
	}
	return keys
}

func (g *generator) exchangeChannelObject(x topology.Exchange) mapping {
	types := g.routedTo(x.Name)
	c := newMapping()
	var keys []string
	for _, jt := range types {
		if k := g.t.Routes[jt].RoutingKey; !slices.Contains(keys, k) {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	if len(keys) > 0 {
		// An AMQP channel's address is the routing key; the exchange is
		// in the binding.
		c.set("address", "{routingKey}")
	} else {
		c.set("address", nil)
	}
	c.set("title", "Exchange "+x.Name)
	desc := fmt.Sprintf("The %s exchange %q.", kindOf(x), x.Name)
	if x.Kind == topology.KindFanout {
		desc += " A fanout exchange copies every job to each queue bound to it, whatever the routing key."
	}
	c.set("description", desc)
	if len(types) > 0 {
		c.set("messages", g.channelMessages(types))
	}
	if len(keys) > 0 {
		c.set("parameters", newMapping().set("routingKey", newMapping().
			set("description", "The routing key a job is published with: its route's.").
			set("enum", keys)))
	}
	ex := newMapping().set("name", x.Name)
	if isBindingKind(x.Kind) {
		ex.set("type", x.Kind)
	}
	ex.set("durable", x.Durable).set("autoDelete", x.AutoDelete)
	if v := g.vhost(); v != "" {
		ex.set("vhost", v)
	}
	c.set("bindings", newMapping().set("amqp", newMapping().
		set("is", "routingKey").
		set("exchange", ex).
		set("bindingVersion", BindingVersion)))
	xw := newMapping()
	xw.setIf(!isBindingKind(x.Kind), "exchangeType", x.Kind)
	xw.setIf(x.Internal, "internal", true)
	if ae, ok := x.Args["alternate-exchange"].(string); ok && ae != "" {
		xw.set("alternateExchange", ae)
	}
	if !xw.empty() {
		c.set("x-warren", xw)
	}
	return c
}

func kindOf(x topology.Exchange) string {
	if x.Kind == "" {
		return "unknown-type"
	}
	return x.Kind
}

// isBindingKind reports whether the AMQP channel binding can name the
// exchange type.
func isBindingKind(kind string) bool {
	switch kind {
	case topology.KindDirect, topology.KindFanout, topology.KindTopic, topology.KindHeaders:
		return true
	}
	return false
}

// typesReaching returns the routed job types that reach queue, sorted.
func (g *generator) typesReaching(queue string) []string {
	var out []string
	for _, jt := range g.t.JobTypes() {
		if slices.Contains(g.reaches[jt], queue) {
			out = append(out, jt)
		}
	}
	return out
}

func (g *generator) queueChannelObject(q topology.Queue) mapping {
	types := g.typesReaching(q.Name)
	c := newMapping()
	if strings.ContainsAny(q.Name, "{}") {
		// Braces in an address are parameters: the binding names the
		// queue.
		c.set("address", nil)
	} else {
		c.set("address", q.Name)
	}
	c.set("title", "Queue "+q.Name)
	c.set("description", fmt.Sprintf("The %s work queue %q, which workers consume.", q.Type, q.Name))
	if len(types) > 0 {
		c.set("messages", g.channelMessages(types))
	}
	qo := newMapping().set("name", q.Name).
		set("durable", q.Durable).
		set("exclusive", q.Exclusive).
		set("autoDelete", q.AutoDelete)
	if v := g.vhost(); v != "" {
		qo.set("vhost", v)
	}
	c.set("bindings", newMapping().set("amqp", newMapping().
		set("is", "queue").
		set("queue", qo).
		set("bindingVersion", BindingVersion)))
	c.set("x-warren", queueExtension(q))
	return c
}

// queueExtension is a queue's x-warren: what warren adds to a queue that
// the AMQP binding has no field for.
func queueExtension(q topology.Queue) mapping {
	m := newMapping().set("queueType", q.Type)
	switch {
	case q.DeadLetterQueue != "":
		m.set("deadLetterQueue", q.DeadLetterQueue)
	case q.DeadLetterExchange != "":
		m.set("deadLetterExchange", q.DeadLetterExchange)
		m.setIf(q.DeadLetterRoutingKey != "", "deadLetterRoutingKey", q.DeadLetterRoutingKey)
	}
	m.setIf(q.QuarantineQueue != "", "quarantineQueue", q.QuarantineQueue)
	if limit, ok := q.Args["x-delivery-limit"].(int64); ok {
		m.set("deliveryLimit", limit)
	}
	if q.Retry != nil {
		m.set("retry", retryNode(*q.Retry))
	}
	return m
}

func retryNode(p topology.RetryPolicy) mapping {
	return newMapping().
		set("maxAttempts", p.MaxAttempts).
		set("initialInterval", duration(p.InitialInterval)).
		set("maxInterval", duration(p.MaxInterval)).
		set("multiplier", p.Multiplier).
		set("jitter", p.Jitter)
}

// duration writes d as a Go duration without zero units: 1h, not 1h0m0s.
func duration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

func (g *generator) operations() mapping {
	m := newMapping()
	opKeys := newKeys()
	for _, jt := range g.t.JobTypes() {
		r := g.t.Routes[jt]
		ch, ok := g.exchangeChannel[r.Exchange]
		if !ok {
			continue // an exchange the topology does not know: Parse refuses it
		}
		send := newMapping().
			set("action", "send").
			set("channel", ref("#/channels/"+ch)).
			set("title", "Send "+jt).
			set("summary", fmt.Sprintf("Publish %s jobs to exchange %q with routing key %q.", jt, r.Exchange, r.RoutingKey)).
			set("messages", g.operationMessages(ch, jt)).
			set("bindings", newMapping().set("amqp", newMapping().
				set("deliveryMode", 2).
				set("mandatory", true).
				set("timestamp", true).
				set("bindingVersion", BindingVersion))).
			set("x-warren", newMapping().set("jobType", jt).set("routingKey", r.RoutingKey))
		m.set(opKeys.take("send"+upper(camel(jt))), send)
		for _, q := range g.reaches[jt] {
			qch, ok := g.queueChannel[q]
			if !ok {
				continue
			}
			recv := newMapping().
				set("action", "receive").
				set("channel", ref("#/channels/"+qch)).
				set("title", "Receive "+jt+" from "+q).
				set("summary", fmt.Sprintf("Workers of queue %q handle %s jobs, acknowledging each once it is done.", q, jt)).
				set("messages", g.operationMessages(qch, jt)).
				set("bindings", newMapping().set("amqp", newMapping().
					set("ack", true).
					set("bindingVersion", BindingVersion))).
				set("x-warren", newMapping().set("jobType", jt).set("retry", retryNode(g.t.RetryPolicy(q, jt))))
			m.set(opKeys.take("receive"+upper(camel(jt))+"From"+upper(camel(q))), recv)
		}
	}
	return m
}

func (g *generator) operationMessages(channel, jt string) []mapping {
	var out []mapping
	for _, key := range g.messageKeys(jt) {
		out = append(out, ref("#/channels/"+channel+"/messages/"+key))
	}
	return out
}

func (g *generator) componentMessages() mapping {
	m := newMapping()
	for _, jt := range g.jobTypes() {
		ct, ok := g.set.Types[jt]
		if !ok {
			m.set(g.messages[jt][0], newMapping().
				set("name", jt).
				set("title", jt).
				set("description", "No contract declares the payload of "+jt+" jobs; declare one under contracts in the topology file.").
				set("contentType", ContentType).
				set("bindings", messageBinding(jt)))
			continue
		}
		for _, n := range ct.Numbers() {
			m.set(g.messages[jt][n], g.message(ct, ct.Versions[n]))
		}
	}
	return m
}

func (g *generator) message(t *contract.Type, v *contract.Version) mapping {
	m := newMapping().
		set("name", t.Name).
		set("title", fmt.Sprintf("%s v%d", t.Name, v.Number))
	m.setIf(t.Description != "", "summary", t.Description)
	m.setIf(v.Description != "", "description", v.Description)
	m.set("contentType", ContentType)
	m.set("headers", versionHeaders(v.Number))
	if v.Schema != nil {
		m.set("payload", newMapping().set("schemaFormat", SchemaFormat).set("schema", schemaNode(v.Schema)))
	}
	m.setIf(v.Deprecated, "deprecated", true)
	m.set("bindings", messageBinding(t.Name))
	m.set("x-warren", newMapping().set("jobType", t.Name).set("version", v.Number))
	return m
}

// versionHeaders is the headers schema of version n: the warren-version
// header, which may be absent on version 1 (an unversioned job is read as
// version 1).
func versionHeaders(n int) mapping {
	h := newMapping().
		set("type", "integer").
		set("const", n)
	m := newMapping().set("type", "object")
	if n == 1 {
		h.set("description", "The contract version of the payload; absent on unversioned jobs, which are version 1.")
	} else {
		h.set("description", "The contract version of the payload.")
		m.set("required", []string{"warren-version"})
	}
	return m.set("properties", newMapping().set("warren-version", h))
}

func messageBinding(jobType string) mapping {
	return newMapping().set("amqp", newMapping().
		set("messageType", jobType).
		set("bindingVersion", BindingVersion))
}

// keys hands out unique keys: a taken key gets a number.
type keys map[string]bool

func newKeys() keys { return keys{} }

func (k keys) take(key string) string {
	out := key
	for i := 2; k[out]; i++ {
		out = key + strconv.Itoa(i)
	}
	k[out] = true
	return out
}

// camel turns a name into a lowerCamelCase key: trip.book is tripBook,
// billing-charge_v2 is billingChargeV2.
func camel(name string) string {
	var b strings.Builder
	up := false
	for _, r := range name {
		if r >= unicode.MaxASCII || !(unicode.IsLetter(r) || unicode.IsDigit(r)) {
			up = b.Len() > 0
			continue
		}
		switch {
		case b.Len() == 0:
			r = unicode.ToLower(r)
		case up:
			r = unicode.ToUpper(r)
		}
		up = false
		b.WriteRune(r)
	}
	if b.Len() == 0 {
		return "x"
	}
	return b.String()
}

// upper capitalises the first letter of s.
func upper(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}
