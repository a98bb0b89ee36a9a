package dashboard

import (
	"flag"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"testing"

	"github.com/warrenmq/warren/internal/browsertest"
)

var screenshotDir = flag.String("screenshots", "", "write the dashboard's screenshots (PNG) to this directory, relative to the module's root (make screenshots: docs/dashboard)")

// screenshotPages are the pages docs/dashboard.md shows: file name, path
// and <h1>.
var screenshotPages = []struct{ name, path, h1 string }{
	{"overview", "/", "Overview"},
}

// TestScreenshots renders the main pages at 1280 and 390 px, on a private
// virtual host with jobs parked, and writes a PNG of each: to -screenshots
// (make screenshots), else to a temporary directory, so that without the
// flag it still checks every page renders in a browser without a problem.
func TestScreenshots(t *testing.T) {
	dir := *screenshotDir
	switch {
	case dir == "":
		dir = t.TempDir()
	case !filepath.IsAbs(dir):
		dir = filepath.Join("..", dir) // the test runs in dashboard/
	}
	w := newDLQWorld(t)
	for _, size := range []browsertest.Size{browsertest.Desktop, browsertest.Phone} {
		t.Run(fmt.Sprint(size.Width), func(t *testing.T) {
			b := browserOn(t, w.srv, size)
			for _, p := range screenshotPages {
				if status := b.Navigate(w.srv.URL + p.path); status != http.StatusOK {
					t.Fatalf("GET %s: status %d", p.path, status)
				}
				if got := b.Text("main h1"); got != p.h1 {
					t.Fatalf("GET %s: <h1> %q, want %q", p.path, got, p.h1)
				}
				path := filepath.Join(dir, fmt.Sprintf("%s-%d.png", p.name, size.Width))
				b.Screenshot(path)
				if fi, err := os.Stat(path); err != nil || fi.Size() == 0 {
					t.Fatalf("screenshot %s: %v", path, err)
				}
				if *screenshotDir != "" {
					t.Logf("wrote %s", path)
				}
			}
		})
	}
}
