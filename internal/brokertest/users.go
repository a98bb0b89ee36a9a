package brokertest

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// Permissions are a user's configure, write and read regular expressions
// on one virtual host, as rabbitmqctl set_permissions takes them.
type Permissions struct {
	Configure, Write, Read string
}

// Vhost creates a virtual host unique to the test on the test broker and
// deletes it, with everything in it, when the test ends. Its connections
// are closed then too.
func Vhost(t testing.TB) string {
	t.Helper()
	name := Name(t, "vhost")
	path := "/api/vhosts/" + url.PathEscape(name)
	manage(t, http.MethodPut, path, map[string]string{"description": "warren test " + t.Name()})
	t.Cleanup(func() { manage(t, http.MethodDelete, path, nil) })
	return name
}

// User creates a user unique to the test with password, perms on vhost
// and tags (e.g. "management", for the management API), and deletes it
// when the test ends (which closes its connections). It returns the user's
// name.
func User(t testing.TB, password, vhost string, perms Permissions, tags ...string) string {
	t.Helper()
	name := Name(t, "user")
	path := "/api/users/" + url.PathEscape(name)
	manage(t, http.MethodPut, path, map[string]string{"password": password, "tags": strings.Join(tags, ",")})
	t.Cleanup(func() { manage(t, http.MethodDelete, path, nil) })
	manage(t, http.MethodPut, "/api/permissions/"+url.PathEscape(vhost)+"/"+url.PathEscape(name),
		map[string]string{"configure": perms.Configure, "write": perms.Write, "read": perms.Read})
	return name
}

// URLFor returns the test broker's URL for user, password and vhost, the
// password percent-encoded as it must be.
func URLFor(t testing.TB, user, password, vhost string) string {
	t.Helper()
	u, err := url.Parse(URL(t))
	if err != nil {
		t.Fatalf("brokertest: %v", err)
	}
	return (&url.URL{Scheme: u.Scheme, User: url.UserPassword(user, password), Host: u.Host, Path: "/" + vhost}).String()
}

// manage calls the management API of the test broker as its
// administrator, failing t unless the answer is a success.
func manage(t testing.TB, method, path string, body any) {
	t.Helper()
	base, err := url.Parse(ManagementURL(t))
	if err != nil {
		t.Fatalf("brokertest: management URL: %v", err)
	}
	var r io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		r = bytes.NewReader(b)
	}
	user := base.User
	base.User = nil
	req, err := http.NewRequest(method, strings.TrimSuffix(base.String(), "/")+path, r)
	if err != nil {
		t.Fatalf("brokertest: %v", err)
	}
	pw, _ := user.Password()
	req.SetBasicAuth(user.Username(), pw)
	req.Header.Set("Content-Type", "application/json")
	client := &http.Client{Transport: &http.Transport{}, Timeout: 10 * time.Second}
	defer client.CloseIdleConnections()
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("brokertest: %s %s (is the management plugin enabled? rabbitmq-plugins enable rabbitmq_management): %v", method, path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		t.Fatalf("brokertest: %s %s: %s %s", method, path, resp.Status, bytes.TrimSpace(msg))
	}
}
