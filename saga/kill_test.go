package saga_test

import "testing"

const childEnv = "WARREN_SAGA_TEST_CHILD"

func runChild() int { return 0 }

var _ = testing.Short
