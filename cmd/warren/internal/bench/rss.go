package bench

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// resetPeakRSS resets the kernel's high-water mark of the process's RSS
// (VmHWM), so that the next peakRSS reads the peak from now on. Linux only.
func resetPeakRSS() error {
	f, err := os.OpenFile("/proc/self/clear_refs", os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	_, err = f.Write([]byte("5")) // 5: reset the peak RSS (proc(5))
	return errors.Join(err, f.Close())
}

// peakRSS returns the process's peak RSS in bytes: VmHWM, if reset says the
// high-water mark was reset before the run; else the peak over the process's
// life (getrusage's ru_maxrss), with lifetime set.
func peakRSS(reset bool) (bytes int64, lifetime bool) {
	if reset {
		if hwm, err := vmHWM(); err == nil {
			return hwm, false
		}
	}
	return lifetimeMaxRSS(), true
}

// vmHWM reads VmHWM from /proc/self/status.
func vmHWM() (int64, error) { return procStatus("VmHWM:") }

// procStatus reads a field given in kB from /proc/self/status, in bytes.
func procStatus(field string) (int64, error) {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, err
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), field)
		if !ok {
			continue
		}
		kb, ok := strings.CutSuffix(strings.TrimSpace(rest), " kB")
		if !ok {
			return 0, fmt.Errorf("%s not in kB", field)
		}
		n, err := strconv.ParseInt(strings.TrimSpace(kb), 10, 64)
		if err != nil {
			return 0, err
		}
		return n * 1024, nil
	}
	return 0, fmt.Errorf("no %s in /proc/self/status", field)
}

// anonInterval is how often an anonSampler reads the anonymous RSS.
const anonInterval = 10 * time.Millisecond

// anonSampler keeps the peak of the process's anonymous RSS (RssAnon: its
// heap, goroutine stacks and the runtime's own memory, but not the pages of
// the executable it maps, which the kernel counts in the RSS too and which
// depend on the binary, not on the code that runs), read every
// anonInterval. The kernel keeps no high-water mark of it. Linux only:
// elsewhere the peak stays 0.
type anonSampler struct {
	peak atomic.Int64 // written by the loop alone
	stop chan struct{}
	done chan struct{}
}

// startAnonSampler starts sampling; finish stops it.
func startAnonSampler() *anonSampler {
	s := &anonSampler{stop: make(chan struct{}), done: make(chan struct{})}
	go s.loop()
	return s
}

func (s *anonSampler) loop() {
	defer close(s.done)
	t := time.NewTicker(anonInterval)
	defer t.Stop()
	for {
		if n, err := procStatus("RssAnon:"); err == nil && n > s.peak.Load() {
			s.peak.Store(n)
		}
		select {
		case <-s.stop:
			return
		case <-t.C:
		}
	}
}

// finish stops the sampler, with a last reading, and returns the peak in
// bytes (0 where the kernel does not report it).
func (s *anonSampler) finish() int64 {
	close(s.stop)
	<-s.done
	return s.peakNow()
}

// peakNow returns the peak so far, with a reading now, and leaves the
// sampler running.
func (s *anonSampler) peakNow() int64 {
	peak := s.peak.Load()
	if n, err := procStatus("RssAnon:"); err == nil {
		peak = max(peak, n)
	}
	return peak
}
