package dashboard

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"net/http"
	"net/url"
	"strings"
)

// sessionCookie is the cookie the login page sets. Its value is an HMAC of
// the token under a key drawn when the server starts, never the token: it
// proves the token was given to this server, and a restart ends every
// session.
const sessionCookie = "warren_session"

// session returns the session cookie's value for s's token.
func (s *Server) session() string {
	m := hmac.New(sha256.New, s.sessionKey[:])
	m.Write([]byte(s.opts.Token))
	return hex.EncodeToString(m.Sum(nil))
}

func newSessionKey() (k [32]byte) {
	_, _ = rand.Read(k[:]) // crypto/rand.Read never fails (Go 1.24+)
	return k
}

func equal(a, b string) bool { return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1 }

// authenticated reports whether r carries the token (Authorization:
// Bearer) or the session cookie.
func (s *Server) authenticated(r *http.Request) bool {
	if h := r.Header.Get("Authorization"); h != "" {
		scheme, tok, ok := strings.Cut(h, " ")
		return ok && strings.EqualFold(scheme, "Bearer") && equal(strings.TrimSpace(tok), s.opts.Token)
	}
	c, err := r.Cookie(sessionCookie)
	return err == nil && equal(c.Value, s.session())
}

// authenticate requires Options.Token of every request when it is set,
// but for the assets and the login page. A browser asking for a page
// without it is sent to the login page; anything else gets 401.
func (s *Server) authenticate(next http.Handler) http.Handler {
	if s.opts.Token == "" {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/static/") || r.URL.Path == "/login" || s.authenticated(r) {
			next.ServeHTTP(w, r)
			return
		}
		if r.Method == http.MethodGet && strings.Contains(r.Header.Get("Accept"), "text/html") {
			http.Redirect(w, r, s.opts.Prefix+"/login?next="+url.QueryEscape(s.opts.Prefix+r.URL.RequestURI()), http.StatusSeeOther)
			return
		}
		w.Header().Set("WWW-Authenticate", `Bearer realm="warren"`)
		http.Error(w, "401 unauthorized: send the dashboard's token (Authorization: Bearer TOKEN), or log in at "+s.opts.Prefix+"/login", http.StatusUnauthorized)
	})
}

func (s *Server) authRoutes() {
	s.mux.HandleFunc("GET /login", s.loginPage)
	s.mux.HandleFunc("POST /login", s.login)
	s.mux.HandleFunc("POST /logout", s.logout)
}

type loginData struct {
	Next    string
	Failed  bool
	NoToken bool
}

func (s *Server) loginPage(w http.ResponseWriter, r *http.Request) {
	s.render(w, r, http.StatusOK, "login", "Log in", loginData{Next: s.next(r.URL.Query().Get("next")), NoToken: s.opts.Token == ""})
}

func (s *Server) login(w http.ResponseWriter, r *http.Request) {
	next := s.next(r.PostFormValue("next"))
	if s.opts.Token == "" {
		http.Redirect(w, r, next, http.StatusSeeOther)
		return
	}
	if !equal(r.PostFormValue("token"), s.opts.Token) {
		s.opts.Logger.Warn().Str("remote", r.RemoteAddr).Msg("dashboard: login refused: wrong token")
		s.render(w, r, http.StatusUnauthorized, "login", "Log in", loginData{Next: next, Failed: true})
		return
	}
	http.SetCookie(w, &http.Cookie{
		Name: sessionCookie, Value: s.session(), Path: s.cookiePath(),
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil,
	})
	http.Redirect(w, r, next, http.StatusSeeOther)
}

func (s *Server) logout(w http.ResponseWriter, r *http.Request) {
	http.SetCookie(w, &http.Cookie{
		Name: sessionCookie, Value: "", Path: s.cookiePath(), MaxAge: -1,
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil,
	})
	http.Redirect(w, r, s.opts.Prefix+"/login", http.StatusSeeOther)
}

func (s *Server) cookiePath() string {
	if s.opts.Prefix == "" {
		return "/"
	}
	return s.opts.Prefix
}

// next returns where to go after logging in: p when it is a path of the
// dashboard (never another site), else the overview.
func (s *Server) next(p string) string {
	home := s.opts.Prefix + "/"
	if !strings.HasPrefix(p, home) || strings.HasPrefix(p, "//") || strings.ContainsAny(p, "\\\r\n") {
		return home
	}
	return p
}
