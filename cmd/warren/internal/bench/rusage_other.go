//go:build !unix

package bench

import (
	"errors"
	"os"
	"time"
)

func cpuTime() (time.Duration, error) {
	return 0, errors.New("CPU time is measured on Unix systems only")
}

func lifetimeMaxRSS() int64 { return 0 }

func processMaxRSS(*os.ProcessState) int64 { return 0 }
