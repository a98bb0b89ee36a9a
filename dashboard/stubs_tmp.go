package dashboard

import "net/http"

func (s *Server) queuePage(w http.ResponseWriter, r *http.Request) {}
func (s *Server) workers(w http.ResponseWriter, r *http.Request)   {}
