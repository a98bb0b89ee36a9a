package browsertest

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// site serves a few pages for the harness's own tests.
func site(t *testing.T) *httptest.Server {
	t.Helper()
	pages := map[string]string{
		"/": `<!doctype html><title>ok</title><a href="#x" id="skip">Skip</a><nav><a href="/next">Next</a></nav>
<button onclick="document.getElementById('out').textContent='clicked ' + this.textContent">Go on</button>
<p id="out" data-n="7"></p><p>lots of text</p>`,
		"/next": `<!doctype html><title>next</title><h1>The next page</h1>`,
		"/broken": `<!doctype html><title>broken</title><link rel="stylesheet" href="/missing.css">
<script>console.error("boom from the page")</script><script>undefinedFunction()</script><img src="/missing.png" alt="">`,
		"/wide": `<!doctype html><meta name="viewport" content="width=device-width, initial-scale=1"><title>wide</title>
<style>@media (prefers-color-scheme: dark) { body { background: rgb(1, 2, 3) } }</style><p>w</p>`,
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, ok := pages[r.URL.Path]
		p = `<link rel="icon" href="data:,">` + p // no /favicon.ico request
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprint(w, p)
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestNavigateClickAndRead(t *testing.T) {
	srv := site(t)
	b := New(t)
	if got := b.Navigate(srv.URL + "/"); got != http.StatusOK {
		t.Fatalf("Navigate: status %d", got)
	}
	b.Tab()
	if got := b.Focused(); got != "a Skip #x" {
		t.Errorf("after one Tab from the top, focus on %q, want the first link", got)
	}
	b.ClickText("Go on")
	b.WaitText("clicked Go on")
	if got := b.Attr("#out", "data-n"); got != "7" {
		t.Errorf(`Attr = %q, want "7"`, got)
	}
	if got := b.Count("a"); got != 2 {
		t.Errorf("Count(a) = %d, want 2", got)
	}
	if !b.HasText("Next") || b.HasText("No such button") {
		t.Error("HasText does not tell the links there are from those there are not")
	}
	if got := b.ClickTextAndLoad("Next"); got != http.StatusOK {
		t.Errorf("ClickTextAndLoad: status %d", got)
	}
	if got := b.Text("h1"); got != "The next page" {
		t.Errorf("h1 = %q", got)
	}
	if out := b.RequestsOutside(srv.URL); len(out) != 0 {
		t.Errorf("requests outside the test server: %v", out)
	}
}

// TestProblemsRecorded: a console error, an uncaught exception and a 404
// asset are each recorded, and a test that takes them no longer fails.
func TestProblemsRecorded(t *testing.T) {
	srv := site(t)
	b := New(t)
	b.Navigate(srv.URL + "/broken")
	b.WaitTrue("document.readyState === 'complete'", "the page to load")
	want := map[string]bool{"console": false, "exception": false, "status": false, "log": false}
	var got []Problem
	b.WaitTrue("true", "the page's events") // a round trip, after the events of the load
	for range 3 {                           // the three may arrive over more than one round trip
		got = append(got, b.TakeProblems()...)
		for _, p := range got {
			switch {
			case p.Kind == "console" && strings.Contains(p.Text, "boom from the page"),
				p.Kind == "exception" && strings.Contains(p.Text, "undefinedFunction"),
				p.Kind == "status" && p.Status == http.StatusNotFound && strings.HasSuffix(p.URL, "/missing.png"),
				p.Kind == "log" && strings.Contains(p.Text, "/missing.css"): // a 404 as text/plain, refused as a stylesheet
				want[p.Kind] = true
			}
		}
		if want["console"] && want["exception"] && want["status"] && want["log"] {
			return
		}
		b.WaitTrue("true", "the page's events")
	}
	t.Errorf("problems recorded: %v; found of each kind wanted: %v", got, want)
}

func TestPhoneAndDarkMode(t *testing.T) {
	srv := site(t)
	b := New(t, WithSize(Phone))
	b.ColorScheme("dark")
	b.Navigate(srv.URL + "/wide")
	if w := Eval[int](b, "window.innerWidth"); w != Phone.Width {
		t.Errorf("innerWidth = %d, want %d", w, Phone.Width)
	}
	if bg := Eval[string](b, "getComputedStyle(document.body).backgroundColor"); bg != "rgb(1, 2, 3)" {
		t.Errorf("dark background = %q, want the dark rule's", bg)
	}
	b.Screenshot(filepath.Join(t.TempDir(), "shots", "wide.png"))
}

func TestScreenshotWritesPNG(t *testing.T) {
	srv := site(t)
	b := New(t)
	b.Navigate(srv.URL + "/")
	path := filepath.Join(t.TempDir(), "a", "b.png")
	b.Screenshot(path)
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(data), "\x89PNG\r\n\x1a\n") {
		t.Errorf("%s is not a PNG (%d bytes)", path, len(data))
	}
}

// TestExternalRequestSeen: a request to another origin shows in
// RequestsOutside.
func TestExternalRequestSeen(t *testing.T) {
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/css")
	}))
	defer other.Close()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		fmt.Fprintf(w, `<!doctype html><title>x</title><link rel="icon" href="data:,"><link rel="stylesheet" href="%s/font.css"><p>x</p>`, other.URL)
	}))
	defer srv.Close()
	b := New(t)
	b.Navigate(srv.URL + "/")
	out := b.RequestsOutside(srv.URL)
	if len(out) != 1 || out[0] != other.URL+"/font.css" {
		t.Errorf("RequestsOutside = %v, want [%s/font.css]", out, other.URL)
	}
}

// TestCleanupKillsBrowser: while a test runs its browser has processes;
// after its cleanup none is left.
func TestCleanupKillsBrowser(t *testing.T) {
	var dir string
	t.Run("browser", func(t *testing.T) {
		b := New(t)
		dir = b.dataDir
		var crashHandler bool
		for _, p := range processesUsing(dir) {
			exe, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", p.Pid))
			crashHandler = crashHandler || strings.Contains(exe, "crashpad")
		}
		if n := len(processesUsing(dir)); n == 0 {
			t.Fatalf("no process with the profile %s while the browser runs", dir)
		}
		t.Logf("crash handler among them: %v", crashHandler)
	})
	if left := processesUsing(dir); len(left) != 0 {
		t.Errorf("%d browser processes left after the test", len(left))
	}
}

func TestPathFromEnvironment(t *testing.T) {
	t.Setenv("CHROMIUM", filepath.Join(t.TempDir(), "no-browser"))
	_, err := Path()
	if err == nil || !strings.Contains(err.Error(), "CHROMIUM=") {
		t.Errorf("Path with CHROMIUM naming nothing: %v, want an error naming CHROMIUM", err)
	}
	t.Setenv("CHROMIUM", "")
	if _, err := os.Stat(DefaultPath); err == nil {
		if p, err := Path(); err != nil || p != DefaultPath {
			t.Errorf("Path() = %q, %v; want %s", p, err, DefaultPath)
		}
	} else if _, err := Path(); err == nil || !strings.Contains(err.Error(), "apt-get install chromium") {
		t.Errorf("Path without a browser: %v, want how to install one", err)
	}
}

func TestNames(t *testing.T) {
	const dir = "/tmp/T1/001"
	for arg, want := range map[string]bool{
		"--user-data-dir=/tmp/T1/001":                    true,
		"--database=/tmp/T1/001/config/chromium/Crash R": true,
		"--user-data-dir=/tmp/T1/0012":                   false,
		"--database=/root/.config/chromium/Crash":        false,
	} {
		if got := names(arg, dir); got != want {
			t.Errorf("names(%q, %q) = %v, want %v", arg, dir, got, want)
		}
	}
}

func TestJSString(t *testing.T) {
	for in, want := range map[string]string{`a`: `"a"`, `"'\`: `"\"'\\"`, "l\nm": `"l\u000am"`} {
		if got := jsString(in); got != want {
			t.Errorf("jsString(%q) = %s, want %s", in, got, want)
		}
	}
}
