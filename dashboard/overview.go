package dashboard

import "net/http"

// overviewRoutes registers the overview, queue, workers and topology pages.
func (s *Server) overviewRoutes() {
	s.mux.HandleFunc("GET /{$}", s.overview)
}

func (s *Server) overview(w http.ResponseWriter, r *http.Request) {
	queues, err := s.mgmt.Queues(r.Context())
	if err != nil {
		s.fail(w, r, http.StatusBadGateway, err)
		return
	}
	s.render(w, r, http.StatusOK, "overview", "Overview", queues)
}
