package rabbitnode

import (
	"strings"
	"testing"
)

func TestVersionOptions(t *testing.T) {
	for _, tc := range []struct {
		name    string
		env     string
		opts    []Option
		want    string // the version chosen
		wantErr []string
	}{
		{name: "the machine's by default", want: ""},
		{name: "WithVersion", opts: []Option{WithVersion("4.3")}, want: "4.3"},
		{name: "from the environment", env: "4.0", want: "4.0"},
		{name: "WithVersion wins", env: "4.0", opts: []Option{WithVersion("4.3")}, want: "4.3"},
		{name: "unknown version", opts: []Option{WithVersion("3.13")}, wantErr: []string{`"3.13"`, "4.0, 4.3"}},
		{name: "unknown version in the environment", env: "5", wantErr: []string{VersionEnv, `"5"`, "4.0, 4.3"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv(VersionEnv, tc.env)
			var o options
			var errs []string
			for _, opt := range tc.opts {
				if err := opt(&o); err != nil {
					errs = append(errs, err.Error())
				}
			}
			if err := versionFromEnv(&o); err != nil {
				errs = append(errs, err.Error())
			}
			got := strings.Join(errs, "\n")
			if len(tc.wantErr) == 0 {
				if got != "" || o.version != tc.want {
					t.Errorf("version %q, errors %q; want %q", o.version, got, tc.want)
				}
				return
			}
			for _, w := range tc.wantErr {
				if !strings.Contains(got, w) {
					t.Errorf("errors do not mention %s:\n%s", w, got)
				}
			}
		})
	}
}

// TestRootfsNotBuilt: a version whose root filesystem is missing, for a
// user who cannot build it, names the command that builds it.
func TestRootfsNotBuilt(t *testing.T) {
	t.Setenv("WARREN_ROOTFS_DIR", t.TempDir())
	if _, err := readRootfs("4.3"); err == nil {
		t.Fatal("an empty cache holds a root filesystem")
	}
	_, err := rootfsUser(&rootfs{dir: t.TempDir(), version: "4.3"}, runAs{})
	if err == nil {
		t.Fatal("a root filesystem without a rabbitmq user was accepted")
	}
	if !strings.Contains(err.Error(), "scripts/rabbitmq4.sh build 4.3") && !strings.Contains(err.Error(), "needs root") {
		t.Errorf("the error does not say what to do:\n%v", err)
	}
}
