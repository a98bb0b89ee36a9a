package topology

import (
	"math"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestParseDuration(t *testing.T) {
	tests := []struct {
		in      string
		want    time.Duration
		wantErr string
	}{
		{in: "0", want: 0},
		{in: "0s", want: 0},
		{in: "250ms", want: 250 * time.Millisecond},
		{in: "90s", want: 90 * time.Second},
		{in: "1h30m", want: 90 * time.Minute},
		{in: "7d", want: 7 * 24 * time.Hour},
		{in: "1.5d", want: 36 * time.Hour},
		{in: "1d12h", want: 36 * time.Hour},
		{in: "2d3h4m5s", want: 2*24*time.Hour + 3*time.Hour + 4*time.Minute + 5*time.Second},
		{in: "+1s", want: time.Second},
		{in: "106751d", want: 106751 * 24 * time.Hour},
		{in: "", wantErr: "is empty"},
		{in: "-1s", wantErr: "must not be negative"},
		{in: "5", wantErr: "is not a duration"},
		{in: "d", wantErr: "is not a duration"},
		{in: "1 d", wantErr: `has an unknown unit " d"`},
		{in: "3 days", wantErr: `has an unknown unit " days"`},
		{in: "1w", wantErr: `has an unknown unit "w"`},
		{in: "1.2.3d", wantErr: "is not a duration"},
		{in: "106752d", wantErr: "is too large"},
		{in: "106751d1000h", wantErr: "is too large"},
		{in: "9999999999h", wantErr: "is too large"},
	}
	for _, tt := range tests {
		got, err := parseDuration(tt.in)
		if tt.wantErr != "" {
			if err == nil || err.Error() != tt.wantErr {
				t.Errorf("parseDuration(%q) = %v, %v; want error %q", tt.in, got, err, tt.wantErr)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("parseDuration(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
		}
	}
}

func TestParseSize(t *testing.T) {
	tests := []struct {
		in      string
		want    int64
		wantErr string
	}{
		{in: "0", want: 0},
		{in: "100", want: 100},
		{in: "1B", want: 1},
		{in: "1KB", want: 1000},
		{in: "1kb", want: 1000},
		{in: "2MB", want: 2e6},
		{in: "1GB", want: 1e9},
		{in: "1TB", want: 1e12},
		{in: "1KiB", want: 1024},
		{in: "512MiB", want: 512 << 20},
		{in: "1GiB", want: 1 << 30},
		{in: "1 GiB", want: 1 << 30},
		{in: "1.5KiB", want: 1536},
		{in: "2TiB", want: 2 << 40},
		{in: "1.5B", wantErr: "is not a whole number of bytes"},
		{in: "1XB", wantErr: `has an unknown unit "XB"`},
		{in: "GiB", wantErr: "is not a size"},
		{in: "-1KB", wantErr: "is not a size"},
		{in: "1  GiB", wantErr: "is not a size"},
		{in: "9999999TiB", wantErr: "is too large"},
	}
	for _, tt := range tests {
		got, err := parseSize(tt.in)
		if tt.wantErr != "" {
			if err == nil || err.Error() != tt.wantErr {
				t.Errorf("parseSize(%q) = %v, %v; want error %q", tt.in, got, err, tt.wantErr)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("parseSize(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
		}
	}
}

func TestFmtDuration(t *testing.T) {
	got := []string{}
	for _, d := range []time.Duration{0, 500 * time.Millisecond, time.Second, 90 * time.Second, time.Hour, 2*time.Hour + time.Second, 7 * 24 * time.Hour, MaxDelay, math.MaxInt64} {
		got = append(got, fmtDuration(d))
	}
	want := []string{"0s", "500ms", "1s", "1m30s", "1h", "2h0m1s", "7d", "3106d21h24m15s", "106751d23h47m16.854775807s"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("fmtDuration (-want +got):\n%s", diff)
	}
}
