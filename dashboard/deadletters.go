package dashboard

// deadLetterRoutes registers the dead-letter pages and actions.
func (s *Server) deadLetterRoutes() {}
