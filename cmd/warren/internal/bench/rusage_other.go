//go:build !unix

package bench

import (
	"errors"
	"time"
)

func cpuTime() (time.Duration, error) {
	return 0, errors.New("CPU time is measured on Unix systems only")
}

func lifetimeMaxRSS() int64 { return 0 }
