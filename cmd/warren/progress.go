package main

import (
	"io"

	"github.com/schollz/progressbar/v3"
)

// progress is a progress bar on a terminal, for long operator commands.
// schollz/progressbar draws it: rate, count and time left, redrawn in
// place, which hand-written code would get wrong on narrow terminals.
type progress struct {
	bar *progressbar.ProgressBar
}

func newProgress(w io.Writer, what string) *progress {
	return &progress{bar: progressbar.NewOptions(-1,
		progressbar.OptionSetWriter(w),
		progressbar.OptionSetDescription(what),
		progressbar.OptionShowCount(),
		progressbar.OptionShowIts(),
		progressbar.OptionSetItsString("jobs"),
		progressbar.OptionThrottle(100_000_000), // 100ms
		progressbar.OptionClearOnFinish(),
	)}
}

// update shows read of total.
func (p *progress) update(read, total int) {
	if p.bar.GetMax() != total {
		p.bar.ChangeMax(total)
	}
	_ = p.bar.Set(read)
}

func (p *progress) finish() { _ = p.bar.Finish() }
