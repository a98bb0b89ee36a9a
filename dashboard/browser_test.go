package dashboard

import (
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/warrenmq/warren/internal/browsertest"
)

// The dashboard in a real, headless Chromium (internal/browsertest): what
// an operator sees and does, checked where only a browser can check it
// (layout, focus, colour scheme, the requests a page makes). Every test
// also fails on a console error, an uncaught exception or a request
// answered 4xx/5xx that it did not expect.

// mainPages are the pages every layout check visits: path and <h1>.
var mainPages = []struct{ path, h1 string }{
	{"/", "Overview"},
	{"/dlq", "Dead letters"},
	{"/topology", "Topology"},
	{"/workers", "Workers"},
}

// browserOn starts a browser of size for the dashboard srv serves, and fails
// the test at its end if a page requested anything from another origin.
func browserOn(t *testing.T, srv *httptest.Server, size browsertest.Size) *browsertest.Browser {
	t.Helper()
	b := browsertest.New(t, browsertest.WithSize(size))
	t.Cleanup(func() {
		if out := b.RequestsOutside(srv.URL); len(out) > 0 {
			t.Errorf("the dashboard requested from other origins (it must serve every asset itself): %v", out)
		}
	})
	return b
}

// browserOpen loads path and waits for its <h1>.
func browserOpen(t *testing.T, b *browsertest.Browser, srv *httptest.Server, path, h1 string) {
	t.Helper()
	if status := b.Navigate(srv.URL + path); status != http.StatusOK {
		t.Fatalf("GET %s: status %d", path, status)
	}
	if got := b.Text("main h1"); got != h1 {
		t.Fatalf("GET %s: <h1> %q, want %q", path, got, h1)
	}
}

func TestBrowserOverview(t *testing.T) {
	srv := newTestServer(t, Options{})
	b := browserOn(t, srv, browsertest.Desktop)
	browserOpen(t, b, srv, "/", "Overview")
	if got := browsertest.Eval[string](b, `document.title`); !strings.Contains(got, "Overview") {
		t.Errorf("title %q does not name the page", got)
	}
	nav := browsertest.Eval[[]string](b, `[...document.querySelectorAll('nav[aria-label="Main"] a')].map(a => a.innerText.trim())`)
	for _, want := range []string{"Overview", "Dead letters", "Topology", "Workers"} {
		if !slices.Contains(nav, want) {
			t.Errorf("main nav %q has no %q", nav, want)
		}
	}
	if got := b.Attr(`nav a[aria-current="page"]`, "href"); got != "/" {
		t.Errorf("the nav marks %q as the current page, want /", got)
	}
	if n := len(b.Requests()); n < 3 {
		t.Errorf("%d requests: want the page, its stylesheet and its script", n)
	}
}

// TestBrowserKeyboard: from the top of the page, Tab reaches the skip
// link first (shown when focused), then each link of the main nav in
// order.
func TestBrowserKeyboard(t *testing.T) {
	srv := newTestServer(t, Options{})
	b := browserOn(t, srv, browsertest.Desktop)
	browserOpen(t, b, srv, "/", "Overview")

	b.Tab()
	if got := b.Focused(); !strings.HasPrefix(got, "a Skip to content") || !strings.HasSuffix(got, "#main") {
		t.Fatalf("first Tab focuses %q, want the skip link to #main", got)
	}
	if !browsertest.Eval[bool](b, `(() => { const r = document.activeElement.getBoundingClientRect();
		return r.width > 0 && r.left >= 0 && r.top >= 0 && r.right <= innerWidth; })()`) {
		t.Error("the focused skip link is not on screen")
	}
	nav := browsertest.Eval[[]string](b, `[...document.querySelectorAll('nav[aria-label="Main"] a')].map(a => 'a ' + a.innerText.trim() + ' ' + a.getAttribute('href'))`)
	if len(nav) == 0 {
		t.Fatal("no links in the main nav")
	}
	for i, want := range nav {
		b.Tab()
		if got := b.Focused(); got != want {
			t.Fatalf("Tab %d focuses %q, want nav link %q", i+2, got, want)
		}
		if style := browsertest.Eval[string](b, `getComputedStyle(document.activeElement).outlineStyle`); style == "none" {
			t.Errorf("nav link %q has no visible focus outline", want)
		}
	}
}

// TestBrowserPhone: at 390 px the body never scrolls sideways; a table
// wider than the screen scrolls inside a wrapper of its own.
func TestBrowserPhone(t *testing.T) {
	srv := newTestServer(t, Options{})
	b := browserOn(t, srv, browsertest.Phone)
	for _, p := range mainPages {
		browserOpen(t, b, srv, p.path, p.h1)
		checkNoSidewaysScroll(t, b, p.path)
	}
}

func checkNoSidewaysScroll(t *testing.T, b *browsertest.Browser, path string) {
	t.Helper()
	// A phone's browser lays out content wider than the screen by zooming
	// out (innerWidth grows) or scrolling sideways (scrollWidth grows).
	if w, sw := browsertest.Eval[int](b, `innerWidth`), browsertest.Eval[int](b, `document.documentElement.scrollWidth`); w > browsertest.Phone.Width || sw > w {
		t.Errorf("%s: on a %d px phone the page is %d px wide (scrollWidth %d): it zooms out or scrolls sideways", path, browsertest.Phone.Width, w, sw)
	}
	// Each table wider than the screen must have an ancestor (or be one)
	// that scrolls horizontally.
	bad := browsertest.Eval[[]string](b, `[...document.querySelectorAll('table')].filter(t => t.scrollWidth > innerWidth).filter(t => {
		for (let e = t; e && e !== document.body; e = e.parentElement) {
			const o = getComputedStyle(e).overflowX;
			if (o === 'auto' || o === 'scroll') return false;
		}
		return true;
	}).map(t => t.outerHTML.slice(0, 80))`)
	if len(bad) > 0 {
		t.Errorf("%s: tables wider than the phone without a scrolling wrapper: %q", path, bad)
	}
}

// TestBrowserColorScheme: with prefers-color-scheme: dark the body is dark,
// with light it is light.
func TestBrowserColorScheme(t *testing.T) {
	srv := newTestServer(t, Options{})
	for _, tc := range []struct {
		scheme string
		dark   bool
	}{{"dark", true}, {"light", false}} {
		t.Run(tc.scheme, func(t *testing.T) {
			b := browserOn(t, srv, browsertest.Desktop)
			b.ColorScheme(tc.scheme)
			for _, p := range mainPages {
				browserOpen(t, b, srv, p.path, p.h1)
				bg := browsertest.Eval[string](b, `getComputedStyle(document.body).backgroundColor`)
				fg := browsertest.Eval[string](b, `getComputedStyle(document.body).color`)
				lb, err := luminance(bg)
				if err != nil {
					t.Fatalf("%s: body background: %v", p.path, err)
				}
				lf, err := luminance(fg)
				if err != nil {
					t.Fatalf("%s: body text colour: %v", p.path, err)
				}
				if isDark := lb < 0.2; isDark != tc.dark {
					t.Errorf("%s: prefers-color-scheme: %s, body background %s (luminance %.2f)", p.path, tc.scheme, bg, lb)
				}
				if contrast := (max(lb, lf) + 0.05) / (min(lb, lf) + 0.05); contrast < 4.5 {
					t.Errorf("%s: %s scheme: text %s on %s, contrast %.1f:1, below 4.5:1", p.path, tc.scheme, fg, bg, contrast)
				}
			}
		})
	}
}

// luminance is the relative luminance (WCAG 2) of a CSS rgb() or rgba()
// colour as getComputedStyle gives it.
func luminance(css string) (float64, error) {
	s := strings.TrimSuffix(strings.TrimPrefix(strings.TrimPrefix(css, "rgba("), "rgb("), ")")
	parts := strings.Split(s, ",")
	if len(parts) < 3 || s == css {
		return 0, fmt.Errorf("%q is not an rgb() colour", css)
	}
	if len(parts) == 4 && strings.TrimSpace(parts[3]) == "0" {
		return 0, fmt.Errorf("%q is transparent: the page sets no colour of its own", css)
	}
	var l [3]float64
	for i := range 3 {
		v, err := strconv.ParseFloat(strings.TrimSpace(parts[i]), 64)
		if err != nil {
			return 0, fmt.Errorf("%q: %w", css, err)
		}
		c := v / 255
		if c <= 0.04045 {
			l[i] = c / 12.92
		} else {
			l[i] = math.Pow((c+0.055)/1.055, 2.4)
		}
	}
	return 0.2126*l[0] + 0.7152*l[1] + 0.0722*l[2], nil
}

func TestLuminance(t *testing.T) {
	for _, tc := range []struct {
		css  string
		want float64
	}{{"rgb(0, 0, 0)", 0}, {"rgb(255, 255, 255)", 1}, {"rgba(255, 255, 255, 0.5)", 1}} {
		got, err := luminance(tc.css)
		if err != nil || got < tc.want-0.001 || got > tc.want+0.001 {
			t.Errorf("luminance(%q) = %v, %v; want %v", tc.css, got, err, tc.want)
		}
	}
	for _, bad := range []string{"transparent", "rgba(0, 0, 0, 0)", "#fff"} {
		if _, err := luminance(bad); err == nil {
			t.Errorf("luminance(%q): no error", bad)
		}
	}
}
