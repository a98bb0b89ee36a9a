package browsertest

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package if a browser's goroutines outlive its test.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
