package dashboard

import (
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

const testToken = "s3cret-Token-value"

// noRedirect is a client that shows redirects instead of following them.
var noRedirect = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

func get(t *testing.T, url string, header map[string]string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := noRedirect.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(b)
}

func TestAuthRefusesWithoutToken(t *testing.T) {
	srv := newTestServer(t, Options{Token: testToken})
	cases := []struct {
		name, path string
		header     map[string]string
		status     int
		location   string
	}{
		{"api gets 401", "/api/overview", nil, http.StatusUnauthorized, ""},
		{"page without html gets 401", "/", nil, http.StatusUnauthorized, ""},
		{"browser goes to login", "/topology", map[string]string{"Accept": "text/html,*/*"}, http.StatusSeeOther, "/login?next=%2Ftopology"},
		{"wrong bearer", "/", map[string]string{"Authorization": "Bearer nope"}, http.StatusUnauthorized, ""},
		{"wrong cookie", "/", map[string]string{"Cookie": sessionCookie + "=" + testToken}, http.StatusUnauthorized, ""},
		{"static is public", "/static/style.css", nil, http.StatusOK, ""},
		{"login is public", "/login", nil, http.StatusOK, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			resp, body := get(t, srv.URL+c.path, c.header)
			if resp.StatusCode != c.status || resp.Header.Get("Location") != c.location {
				t.Errorf("GET %s: %s Location %q, want %d %q", c.path, resp.Status, resp.Header.Get("Location"), c.status, c.location)
			}
			if strings.Contains(body, testToken) {
				t.Errorf("GET %s shows the token", c.path)
			}
		})
	}
}

func TestAuthBearer(t *testing.T) {
	srv := newTestServer(t, Options{Token: testToken})
	resp, body := get(t, srv.URL+"/", map[string]string{"Authorization": "Bearer " + testToken})
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET / with the bearer token: %s", resp.Status)
	}
	if strings.Contains(body, testToken) {
		t.Error("the overview shows the token")
	}
}

func TestAuthLoginCookieLogout(t *testing.T) {
	srv := newTestServer(t, Options{Token: testToken, Prefix: ""})
	post := func(path string, form url.Values, cookie *http.Cookie) (*http.Response, string) {
		req, err := http.NewRequest(http.MethodPost, srv.URL+path, strings.NewReader(form.Encode()))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if cookie != nil {
			req.AddCookie(cookie)
		}
		resp, err := noRedirect.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}
	resp, body := post("/login", url.Values{"token": {"wrong"}, "next": {"/topology"}}, nil)
	if resp.StatusCode != http.StatusUnauthorized || len(resp.Cookies()) != 0 {
		t.Fatalf("login with a wrong token: %s, cookies %v", resp.Status, resp.Cookies())
	}
	if strings.Contains(body, testToken) || strings.Contains(body, "wrong\"") {
		t.Error("the login page echoes a token")
	}
	resp, _ = post("/login", url.Values{"token": {testToken}, "next": {"//evil.example/"}}, nil)
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/" {
		t.Errorf("login with next=//evil.example/: %s to %q, want 303 to /", resp.Status, resp.Header.Get("Location"))
	}
	var session *http.Cookie
	for _, c := range resp.Cookies() {
		if c.Name == sessionCookie {
			session = c
		}
	}
	if session == nil {
		t.Fatal("login sets no session cookie")
	}
	if !session.HttpOnly || session.SameSite != http.SameSiteStrictMode || session.Path != "/" || strings.Contains(session.Value, testToken) {
		t.Errorf("session cookie %+v: want HttpOnly, SameSite=Strict, Path=/, and not the token", session)
	}
	resp, body = get(t, srv.URL+"/", map[string]string{"Cookie": session.Name + "=" + session.Value})
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET / with the session cookie: %s", resp.Status)
	}
	if strings.Contains(body, testToken) || !strings.Contains(body, `action="/logout"`) {
		t.Error("the overview shows the token, or offers no logout")
	}
	resp, _ = post("/logout", nil, session)
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("logout: %s", resp.Status)
	}
	for _, c := range resp.Cookies() {
		if c.Name == sessionCookie && c.MaxAge >= 0 {
			t.Errorf("logout leaves the cookie: %+v", c)
		}
	}
}

func TestAuthCookiePathIsPrefix(t *testing.T) {
	srv := newTestServer(t, Options{Token: testToken, Prefix: "/ui"})
	resp, err := noRedirect.PostForm(srv.URL+"/ui/login", url.Values{"token": {testToken}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if len(resp.Cookies()) != 1 || resp.Cookies()[0].Path != "/ui" || resp.Header.Get("Location") != "/ui/" {
		t.Errorf("login under /ui: cookies %v, Location %q; want Path=/ui and /ui/", resp.Cookies(), resp.Header.Get("Location"))
	}
}
