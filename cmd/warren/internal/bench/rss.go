package bench

import (
	"bufio"
	"bytes"
	"errors"
	"os"
	"strconv"
	"strings"
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
func vmHWM() (int64, error) {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, err
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), "VmHWM:")
		if !ok {
			continue
		}
		kb, ok := strings.CutSuffix(strings.TrimSpace(rest), " kB")
		if !ok {
			return 0, errors.New("VmHWM not in kB")
		}
		n, err := strconv.ParseInt(strings.TrimSpace(kb), 10, 64)
		if err != nil {
			return 0, err
		}
		return n * 1024, nil
	}
	return 0, errors.New("no VmHWM in /proc/self/status")
}
