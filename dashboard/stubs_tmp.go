package dashboard

import "net/http"

func (s *Server) queuePage(w http.ResponseWriter, r *http.Request) {}
