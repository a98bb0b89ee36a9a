package topology

import (
	"errors"
	"math"
	"math/big"
	"regexp"
	"strings"
	"time"
)

// Durations and sizes as the file writes them.

var (
	errNegative = errors.New("must not be negative")
	errTooLarge = errors.New("is too large")
)

// parseDuration parses Go's duration syntax ("90s", "1h30m", "250ms") plus
// "d" for days of 24 hours ("7d", "1.5d", "1d12h"). Negative durations are an
// error; a bare "0" is zero.
func parseDuration(s string) (time.Duration, error) {
	if s == "0" {
		return 0, nil
	}
	if strings.HasPrefix(s, "-") {
		return 0, errNegative
	}
	s = strings.TrimPrefix(s, "+")
	if s == "" {
		return 0, errors.New("is empty")
	}
	var total time.Duration
	for s != "" {
		i := strings.IndexFunc(s, func(r rune) bool { return !isNumberRune(r) })
		if i <= 0 {
			return 0, errors.New("is not a duration")
		}
		j := strings.IndexFunc(s[i:], isNumberRune)
		if j < 0 {
			j = len(s)
		} else {
			j += i
		}
		num, unit := s[:i], s[i:j]
		var d time.Duration
		if unit == "d" {
			r, ok := new(big.Rat).SetString(num)
			if !ok {
				return 0, errors.New("is not a duration")
			}
			r.Mul(r, big.NewRat(int64(24*time.Hour), 1))
			n := new(big.Int).Quo(r.Num(), r.Denom())
			if !n.IsInt64() {
				return 0, errTooLarge
			}
			d = time.Duration(n.Int64())
		} else {
			var err error
			d, err = time.ParseDuration(num + unit)
			if err != nil {
				if strings.Contains(err.Error(), "unknown unit") {
					return 0, errors.New("has an unknown unit " + quote(unit))
				}
				if strings.Contains(err.Error(), "invalid duration") && validNumber(num) {
					return 0, errTooLarge
				}
				return 0, errors.New("is not a duration")
			}
		}
		if d > math.MaxInt64-total {
			return 0, errTooLarge
		}
		total += d
		s = s[j:]
	}
	return total, nil
}

func isNumberRune(r rune) bool { return r >= '0' && r <= '9' || r == '.' }

func validNumber(s string) bool {
	_, ok := new(big.Rat).SetString(s)
	return ok && !strings.ContainsAny(s, "eE/")
}

var sizePattern = regexp.MustCompile(`^([0-9]+(?:\.[0-9]+)?) ?([A-Za-z]*)$`)

var sizeUnits = map[string]int64{
	"":    1,
	"b":   1,
	"kb":  1e3,
	"mb":  1e6,
	"gb":  1e9,
	"tb":  1e12,
	"kib": 1 << 10,
	"mib": 1 << 20,
	"gib": 1 << 30,
	"tib": 1 << 40,
}

// parseSize parses a byte size: an integer, optionally followed by a unit
// (B, KB, MB, GB, TB in powers of 1000; KiB, MiB, GiB, TiB in powers of 1024;
// case-insensitive). A fraction is allowed when the result is whole bytes
// ("1.5KiB").
func parseSize(s string) (int64, error) {
	m := sizePattern.FindStringSubmatch(s)
	if m == nil {
		return 0, errors.New("is not a size")
	}
	unit, ok := sizeUnits[strings.ToLower(m[2])]
	if !ok {
		return 0, errors.New("has an unknown unit " + quote(m[2]))
	}
	r, ok := new(big.Rat).SetString(m[1])
	if !ok {
		return 0, errors.New("is not a size")
	}
	r.Mul(r, big.NewRat(unit, 1))
	if !r.IsInt() {
		return 0, errors.New("is not a whole number of bytes")
	}
	if !r.Num().IsInt64() {
		return 0, errTooLarge
	}
	return r.Num().Int64(), nil
}
