package browsertest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	cdplog "github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
)

// DefaultPath is where Debian's chromium package puts the browser.
const DefaultPath = "/usr/bin/chromium"

// Size is a viewport: Desktop or Phone, or one of the test's own.
type Size struct {
	Width, Height int
	// Mobile emulates a phone: a touch screen, and the page laid out by
	// its viewport meta tag as a phone's browser does.
	Mobile bool
}

var (
	// Desktop is a laptop's browser window, 1280×800.
	Desktop = Size{Width: 1280, Height: 800}
	// Phone is a phone held upright, 390×844 CSS pixels.
	Phone = Size{Width: 390, Height: 844, Mobile: true}
)

// Option configures New.
type Option func(*config)

type config struct {
	size    Size
	timeout time.Duration
	step    time.Duration
}

// WithSize sets the viewport; default Desktop.
func WithSize(s Size) Option { return func(c *config) { c.size = s } }

// WithTimeout bounds the browser's whole life (default 3 minutes, or the
// test's deadline if sooner), and WithStepTimeout each wait (default 20
// seconds: a browser on a busy CI machine under -race is slow).
func WithTimeout(d time.Duration) Option { return func(c *config) { c.timeout = d } }

// WithStepTimeout bounds each helper's wait for its condition.
func WithStepTimeout(d time.Duration) Option { return func(c *config) { c.step = d } }

// Browser is one headless Chromium with one tab, owned by one test.
type Browser struct {
	t       testing.TB
	ctx     context.Context // the tab's
	step    time.Duration
	dataDir string

	mu       sync.Mutex
	urls     map[network.RequestID]string
	requests []string
	problems []Problem
}

// Problem is something that breaks a page for its user: a console error,
// an uncaught exception, a failed request or one answered 4xx/5xx.
type Problem struct {
	Kind   string // "console", "exception", "log", "request", "status"
	URL    string // the request's, or the script's
	Status int    // the HTTP status, for "status"
	Text   string
}

func (p Problem) String() string {
	s := p.Kind + ": "
	if p.Status != 0 {
		s += fmt.Sprintf("%d ", p.Status)
	}
	if p.URL != "" {
		s += p.URL + ": "
	}
	return s + p.Text
}

// Path returns the browser the tests run: $CHROMIUM, else DefaultPath.
// The error says how to install one.
func Path() (string, error) {
	if p := os.Getenv("CHROMIUM"); p != "" {
		if _, err := exec.LookPath(p); err != nil {
			return "", fmt.Errorf("browsertest: CHROMIUM=%s is not an executable browser (%v): point it at Chromium or Chrome, or unset it to use %s", p, err, DefaultPath)
		}
		return p, nil
	}
	if _, err := exec.LookPath(DefaultPath); err != nil {
		return "", fmt.Errorf("browsertest: no browser at %s for the browser tests: install Chromium with `sudo apt-get install chromium` "+
			"(or scripts/deps.sh, which CI runs), or set CHROMIUM to a Chromium or Chrome binary", DefaultPath)
	}
	return DefaultPath, nil
}

// New starts a headless Chromium for t, with a fresh profile, and opens a
// blank tab. The browser is killed at cleanup, which also fails t on any
// Problem t did not take.
func New(t testing.TB, opts ...Option) *Browser {
	t.Helper()
	cfg := config{size: Desktop, timeout: 3 * time.Minute, step: 20 * time.Second}
	for _, o := range opts {
		o(&cfg)
	}
	path, err := Path()
	if err != nil {
		t.Fatal(err)
	}
	// The profile, removed by the testing package after the cleanup below
	// (cleanups run last-registered first) has killed the browser.
	dir := t.TempDir()

	ctx := context.Background()
	if dl, ok := deadline(t); ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, dl.Add(-5*time.Second))
		t.Cleanup(cancel)
	}
	ctx, cancelTimeout := context.WithTimeout(ctx, cfg.timeout)
	allocOpts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.UserDataDir(dir),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-background-networking", true),
		chromedp.WindowSize(cfg.size.Width, cfg.size.Height),
		// Chromium's crash handler, a process of its own, keeps its
		// database under the configuration directory: there, it names the
		// profile too, so cleanup finds it.
		chromedp.Env("XDG_CONFIG_HOME="+filepath.Join(dir, "config"), "XDG_CACHE_HOME="+filepath.Join(dir, "cache")),
	)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(ctx, allocOpts...)
	b := &Browser{t: t, step: cfg.step, dataDir: dir, urls: map[network.RequestID]string{}}
	tabCtx, cancelTab := chromedp.NewContext(allocCtx, chromedp.WithListener(b.listen))
	b.ctx = tabCtx
	t.Cleanup(func() {
		b.reportProblems()
		cancelTab()       // closes the tab and the browser
		cancelAlloc()     // kills the process if it still runs, and waits for it
		cancelTimeout()   //
		b.killLeftovers() // the browser's children, should any outlive it
	})

	// The first action starts the browser: no step timeout on it, since
	// the browser lives as long as the context of its first action.
	if err := chromedp.Do(tabCtx); err != nil {
		t.Fatalf("browsertest: start %s: %v", path, err)
	}
	vp := []chromedp.EmulateViewportOption{}
	if cfg.size.Mobile {
		vp = append(vp, chromedp.EmulateMobile, chromedp.EmulateTouch, chromedp.EmulatePortrait)
	}
	b.do("set the viewport", chromedp.EmulateViewport(int64(cfg.size.Width), int64(cfg.size.Height), vp...))
	// A headless tab in a window of its own has no focus: keys would reach
	// no element and :focus would never match.
	b.do("emulate focus", chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		_, err := cdp.Call(ctx, t, emulation.SetFocusEmulationEnabled, emulation.SetFocusEmulationEnabledParams{Enabled: true})
		return err
	}))
	return b
}

func deadline(t testing.TB) (time.Time, bool) {
	if d, ok := t.(interface{ Deadline() (time.Time, bool) }); ok {
		return d.Deadline()
	}
	return time.Time{}, false
}

// listen records requests and problems. It runs on the tab's event loop:
// it must return fast and send no command.
func (b *Browser) listen(ev any) {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch ev := ev.(type) {
	case *network.EventRequestWillBeSent:
		if ev.Request != nil {
			b.urls[ev.RequestID] = ev.Request.URL
			b.requests = append(b.requests, ev.Request.URL)
		}
	case *network.EventResponseReceived:
		if r := ev.Response; r != nil && r.Status >= 400 {
			b.problems = append(b.problems, Problem{Kind: "status", URL: r.URL, Status: int(r.Status), Text: r.StatusText})
		}
	case *network.EventLoadingFailed:
		// A request the page itself abandoned (a navigation that replaced
		// it) is not a broken page. One Chromium abandoned because the
		// answer was unusable (a stylesheet served as text/plain, as a
		// 404 page is) also logs an error, recorded below.
		if !ev.Canceled {
			b.problems = append(b.problems, Problem{Kind: "request", URL: b.urls[ev.RequestID], Text: strings.TrimSpace(ev.ErrorText + " " + string(ev.BlockedReason))})
		}
	case *runtime.EventConsoleAPICalled:
		if ev.Type == runtime.ConsoleAPICalledTypeError || ev.Type == runtime.ConsoleAPICalledTypeAssert {
			var parts []string
			for _, a := range ev.Args {
				parts = append(parts, describe(a))
			}
			b.problems = append(b.problems, Problem{Kind: "console", Text: strings.Join(parts, " ")})
		}
	case *runtime.EventExceptionThrown:
		if d := ev.ExceptionDetails; d != nil {
			text := d.Text
			if d.Exception != nil {
				text += " " + describe(d.Exception)
			}
			b.problems = append(b.problems, Problem{Kind: "exception", URL: d.URL, Text: fmt.Sprintf("%s (line %d)", text, d.LineNumber+1)})
		}
	case *cdplog.EventEntryAdded:
		if e := ev.Entry; e != nil && e.Level == cdplog.EntryLevelError {
			b.problems = append(b.problems, Problem{Kind: "log", URL: e.URL, Text: e.Text})
		}
	}
}

func describe(o *runtime.RemoteObject) string {
	switch {
	case o == nil:
		return ""
	case o.Description != "":
		return o.Description
	case len(o.Value) > 0:
		return strings.Trim(string(o.Value), `"`)
	default:
		return string(o.UnserializableValue)
	}
}

// TakeProblems returns the problems recorded so far and forgets them, for
// a test that expects some (a refused request answered 403).
func (b *Browser) TakeProblems() []Problem {
	b.mu.Lock()
	defer b.mu.Unlock()
	p := b.problems
	b.problems = nil
	return p
}

// CheckProblems fails the test now on any problem recorded so far; cleanup
// does it too, for what comes later.
func (b *Browser) CheckProblems() {
	b.t.Helper()
	b.reportProblems()
}

func (b *Browser) reportProblems() {
	b.t.Helper()
	for _, p := range b.TakeProblems() {
		b.t.Errorf("browsertest: the page had a problem: %s", p)
	}
}

// Requests returns every URL the tab requested, in order.
func (b *Browser) Requests() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.requests...)
}

// RequestsOutside returns the requests whose URL does not start with
// origin (as "http://127.0.0.1:34567"); data: URLs are inside every
// origin.
func (b *Browser) RequestsOutside(origin string) []string {
	var out []string
	for _, u := range b.Requests() {
		if u == origin || strings.HasPrefix(u, origin+"/") || strings.HasPrefix(u, "data:") {
			continue
		}
		out = append(out, u)
	}
	return out
}

// Context returns the tab's context, for chromedp actions of the test's own.
func (b *Browser) Context() context.Context { return b.ctx }

// do runs steps, each wait bounded by the step timeout; it fails the test
// saying what it was doing.
func (b *Browser) do(what string, steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, b.step)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		b.t.Fatalf("browsertest: %s: %v", what, b.explain(err))
	}
}

func (b *Browser) explain(err error) error {
	if errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("not done within %s (%w); the page's problems so far: %v", b.step, err, b.peekProblems())
	}
	return err
}

func (b *Browser) peekProblems() []Problem {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]Problem(nil), b.problems...)
}

// run runs one action that returns a value, as do.
func run[T any](b *Browser, what string, a chromedp.Action[T]) T {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, b.step)
	defer cancel()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		b.t.Fatalf("browsertest: %s: %v", what, b.explain(err))
	}
	return v
}

// Navigate loads url and waits for its load event; it returns the HTTP
// status of the document.
func (b *Browser) Navigate(url string) int {
	b.t.Helper()
	resp := run(b, "navigate to "+url, chromedp.NavigateResponse(url))
	if resp == nil {
		return 0
	}
	return int(resp.Status)
}

// Click clicks the first element matching the CSS selector sel, once it
// is visible.
func (b *Browser) Click(sel string) {
	b.t.Helper()
	b.do("click "+sel, chromedp.Click(chromedp.CSS(sel)))
}

// ClickAndLoad clicks sel and waits for the page the click loads (a link,
// a form's submit button); it returns the new document's HTTP status.
func (b *Browser) ClickAndLoad(sel string) int {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, b.step)
	defer cancel()
	resp, err := chromedp.RunResponse(ctx, chromedp.Click(chromedp.CSS(sel)))
	if err != nil {
		b.t.Fatalf("browsertest: click %s and wait for the page it loads: %v", sel, b.explain(err))
	}
	if resp == nil {
		return 0
	}
	return int(resp.Status)
}

// byText is a JavaScript expression giving the first visible button, link
// or submit input whose trimmed text (or value) is text, else null.
func byText(text string) string { return byTextIn("", "", text) }

// byTextIn is byText within the first element matching the CSS selector
// scope whose text contains scopeText (scope "": the whole document).
func byTextIn(scope, scopeText, text string) string {
	return fmt.Sprintf(`(() => {
		const scope = %s, scopeText = %s, want = %s;
		const root = scope === '' ? document : [...document.querySelectorAll(scope)].find(e => e.innerText.includes(scopeText));
		if (!root) return null;
		for (const e of root.querySelectorAll('button, a, input[type=submit], input[type=button], [role=button]')) {
			const t = (e.tagName === 'INPUT' ? e.value : e.innerText || e.textContent || '').trim();
			if (t === want && e.getClientRects().length > 0) return e;
		}
		return null;
	})()`, jsString(scope), jsString(scopeText), jsString(text))
}

// ClickTextInAndLoad clicks the button or link reading text inside the
// first element matching the CSS selector scope whose text contains
// scopeText (a table row, by what it shows), waits for the page the click
// loads and returns its HTTP status.
func (b *Browser) ClickTextInAndLoad(scope, scopeText, text string) int {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, b.step)
	defer cancel()
	resp, err := chromedp.RunResponse(ctx, chromedp.Click(chromedp.JSPath(byTextIn(scope, scopeText, text))))
	if err != nil {
		b.t.Fatalf("browsertest: click %q in the %s showing %q, and wait for the page it loads: %v", text, scope, scopeText, b.explain(err))
	}
	if resp == nil {
		return 0
	}
	return int(resp.Status)
}

// ClickText clicks the first visible button or link whose text is text,
// waiting until there is one.
func (b *Browser) ClickText(text string) {
	b.t.Helper()
	b.do(fmt.Sprintf("click the button or link %q", text), chromedp.Click(chromedp.JSPath(byText(text))))
}

// ClickTextAndLoad is ClickText, then it waits for the page the click
// loads and returns its HTTP status.
func (b *Browser) ClickTextAndLoad(text string) int {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, b.step)
	defer cancel()
	resp, err := chromedp.RunResponse(ctx, chromedp.Click(chromedp.JSPath(byText(text))))
	if err != nil {
		b.t.Fatalf("browsertest: click %q and wait for the page it loads: %v", text, b.explain(err))
	}
	if resp == nil {
		return 0
	}
	return int(resp.Status)
}

// HasText reports whether a visible button or link reads text, now.
func (b *Browser) HasText(text string) bool {
	b.t.Helper()
	return Eval[bool](b, byText(text)+" !== null")
}

// WaitVisible waits until an element matching the CSS selector is visible.
func (b *Browser) WaitVisible(sel string) {
	b.t.Helper()
	b.do("wait for "+sel+" to be visible", chromedp.WaitVisible(chromedp.CSS(sel)))
}

// WaitGone waits until no element matches the CSS selector.
func (b *Browser) WaitGone(sel string) {
	b.t.Helper()
	b.do("wait for "+sel+" to be gone", chromedp.WaitNotPresent(chromedp.CSS(sel)))
}

// WaitText waits until the page's visible text contains text.
func (b *Browser) WaitText(text string) {
	b.t.Helper()
	b.WaitTrue(fmt.Sprintf("document.body && document.body.innerText.includes(%s)", jsString(text)), fmt.Sprintf("the text %q", text))
}

// WaitTrue waits until the JavaScript expression is truthy; what says what
// it waits for, in the failure.
func (b *Browser) WaitTrue(expr, what string) {
	b.t.Helper()
	b.do("wait for "+what, chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		_, err := chromedp.Poll[chromedp.Void](expr,
			chromedp.WithPollingInterval(50*time.Millisecond),
			chromedp.WithPollingTimeout(b.step))(ctx, t)
		return err
	}))
}

// Text returns the visible text of the first element matching the CSS
// selector, once there is one.
func (b *Browser) Text(sel string) string {
	b.t.Helper()
	return strings.TrimSpace(run(b, "read the text of "+sel, chromedp.Text(chromedp.CSS(sel), chromedp.NodeReady)))
}

// Attr returns the attribute name of the first element matching the CSS
// selector, once there is one; it fails the test if the element has no such
// attribute.
func (b *Browser) Attr(sel, name string) string {
	b.t.Helper()
	r := run(b, "read "+name+" of "+sel, chromedp.AttributeValue(chromedp.CSS(sel), name, chromedp.NodeReady))
	if !r.Exists {
		b.t.Fatalf("browsertest: %s has no attribute %s", sel, name)
	}
	return r.Value
}

// Count returns how many elements match the CSS selector now.
func (b *Browser) Count(sel string) int {
	b.t.Helper()
	return Eval[int](b, fmt.Sprintf("document.querySelectorAll(%s).length", jsString(sel)))
}

// Press sends one key (a kb constant such as kb.Tab, or a character) to
// the focused element.
func (b *Browser) Press(key string) {
	b.t.Helper()
	b.do(fmt.Sprintf("press %q", key), chromedp.KeyEvent(key))
}

// Type types text into the first element matching the CSS selector, once
// it is visible, as a user would (key by key, with its events).
func (b *Browser) Type(sel, text string) {
	b.t.Helper()
	b.do("type into "+sel, chromedp.SendKeys(chromedp.CSS(sel), text))
}

// Tab presses the Tab key.
func (b *Browser) Tab() {
	b.t.Helper()
	b.Press(kb.Tab)
}

// Focused describes document.activeElement: its tag, then its text, then
// href or id, as "a Skip to content #main".
func (b *Browser) Focused() string {
	b.t.Helper()
	return Eval[string](b, `(() => {
		const e = document.activeElement;
		if (!e || e === document.body) return 'body';
		const text = (e.innerText || e.value || '').trim();
		return [e.tagName.toLowerCase(), text, e.getAttribute('href') || (e.id ? '#' + e.id : '')].filter(Boolean).join(' ');
	})()`)
}

// ColorScheme emulates prefers-color-scheme: "dark" or "light"; "" ends
// the emulation.
func (b *Browser) ColorScheme(scheme string) {
	b.t.Helper()
	b.do("emulate prefers-color-scheme: "+scheme, chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		_, err := cdp.Call(ctx, t, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{
			Features: []*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: scheme}},
		})
		return err
	}))
}

// Screenshot writes a PNG of the whole page (beyond the viewport) to path,
// making its directory.
func (b *Browser) Screenshot(path string) {
	b.t.Helper()
	png := run(b, "screenshot", chromedp.FullScreenshot(100))
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		b.t.Fatalf("browsertest: screenshot: %v", err)
	}
	if err := os.WriteFile(path, png, 0o644); err != nil {
		b.t.Fatalf("browsertest: screenshot: %v", err)
	}
}

// Eval returns the value of the JavaScript expression in the page; for a
// promise (a fetch, say), the value it resolves to.
func Eval[T any](b *Browser, expr string) T {
	b.t.Helper()
	return run(b, "evaluate "+firstLine(expr), chromedp.Evaluate[T](expr, chromedp.EvalAwaitPromise))
}

func firstLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i] + " …"
	}
	return s
}

// jsString quotes s as a JavaScript string literal.
func jsString(s string) string {
	var sb strings.Builder
	sb.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			sb.WriteByte('\\')
			sb.WriteRune(r)
		case r < 0x20 || r == 0x2028 || r == 0x2029:
			fmt.Fprintf(&sb, `\u%04x`, r)
		default:
			sb.WriteRune(r)
		}
	}
	sb.WriteByte('"')
	return sb.String()
}

// killLeftovers kills every process still running with the browser's
// profile (a child that outlived it) and fails the test if one survives.
func (b *Browser) killLeftovers() {
	b.t.Helper()
	if left := processesUsing(b.dataDir); len(left) > 0 {
		for _, p := range left {
			_ = p.Kill()
		}
	}
	end := time.Now().Add(10 * time.Second)
	for {
		left := processesUsing(b.dataDir)
		if len(left) == 0 {
			return
		}
		if time.Now().After(end) {
			b.t.Errorf("browsertest: %d browser processes survive SIGKILL (profile %s)", len(left), b.dataDir)
			return
		}
		time.Sleep(50 * time.Millisecond) // polling the kernel's process table: no event to wait for
	}
}

// processesUsing lists the running processes whose command line names the
// profile dir or a path in it (Chromium passes --user-data-dir to every
// child it starts; its crash handler gets a database in dir/config).
func processesUsing(dir string) []*os.Process {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var out []*os.Process
	for _, e := range entries {
		pid := 0
		if _, err := fmt.Sscanf(e.Name(), "%d", &pid); err != nil || pid == os.Getpid() {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		for _, arg := range strings.Split(string(cmdline), "\x00") {
			if names(arg, dir) {
				if p, err := os.FindProcess(pid); err == nil {
					out = append(out, p)
				}
				break
			}
		}
	}
	return out
}

// names reports whether the argument arg holds the path dir, or a path
// below it.
func names(arg, dir string) bool {
	for {
		i := strings.Index(arg, dir)
		if i < 0 {
			return false
		}
		arg = arg[i+len(dir):]
		if arg == "" || arg[0] == '/' || arg[0] == ' ' {
			return true
		}
	}
}
