package dashboard

import (
	"net/http"
	"slices"
	"sort"
	"time"

	"github.com/warrenmq/warren/internal/mgmt"
)

// workerProperties are the client properties a worker's connection may
// carry that the workers page shows, in order, when present.
var workerProperties = []string{"host", "pid", "version", "queues", "concurrency"}

// workerRow is one client connection of the vhost.
type workerRow struct {
	Name       string // the connection name the client gave (warren's: broker.WithName)
	Peer       string
	User       string
	Product    string
	Connected  time.Time
	Channels   int64
	State      string
	Properties [][2]string // workerProperties present
	Consumers  []mgmt.Consumer
	Queues     []string // the queues it consumes
}

func (s *Server) workers(w http.ResponseWriter, r *http.Request) {
	conns, err := s.mgmt.Connections(r.Context())
	if err != nil {
		s.fail(w, r, http.StatusBadGateway, err)
		return
	}
	consumers, err := s.mgmt.Consumers(r.Context())
	if err != nil {
		s.fail(w, r, http.StatusBadGateway, err)
		return
	}
	byConn := map[string][]mgmt.Consumer{}
	for _, c := range consumers {
		byConn[c.ChannelDetail.ConnectionName] = append(byConn[c.ChannelDetail.ConnectionName], c)
	}
	out := make([]workerRow, 0, len(conns))
	for _, c := range conns {
		wk := workerRow{
			Name: fmtProp(c.ClientProperties, "connection_name"), Peer: c.PeerHost, User: c.User,
			Channels: c.Channels, State: c.State, Consumers: byConn[c.Name],
		}
		if wk.Name == "" {
			wk.Name = c.Name
		}
		if p := fmtProp(c.ClientProperties, "product"); p != "" {
			wk.Product = p + " " + fmtProp(c.ClientProperties, "version")
		}
		if c.ConnectedAt > 0 {
			wk.Connected = time.UnixMilli(c.ConnectedAt).UTC()
		}
		for _, k := range workerProperties {
			if k == "version" && wk.Product != "" {
				continue // the client library's, shown with its product
			}
			if v := fmtProp(c.ClientProperties, k); v != "" {
				wk.Properties = append(wk.Properties, [2]string{k, v})
			}
		}
		for _, cs := range wk.Consumers {
			if !slices.Contains(wk.Queues, cs.Queue.Name) {
				wk.Queues = append(wk.Queues, cs.Queue.Name)
			}
		}
		sort.Strings(wk.Queues)
		out = append(out, wk)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	s.render(w, r, http.StatusOK, "workers", "Workers", out)
}

func fmtProp(props map[string]any, k string) string {
	v, ok := props[k]
	if !ok || v == nil {
		return ""
	}
	return fmtAny(v)
}
