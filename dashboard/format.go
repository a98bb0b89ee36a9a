package dashboard

import (
	"encoding/json"
	"fmt"
)

// fmtAny shows an argument's value: strings as they are, the rest as JSON.
func fmtAny(v any) string {
	if s, ok := v.(string); ok {
		return s
	}
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}
