package contract_test

import (
	"errors"
	"fmt"

	"github.com/warrenmq/warren/contract"
)

// A contracts file with two versions of trip.book, read with Parse (Load
// reads a file, a topology file or a contracts file).
func ExampleParse() {
	set, err := contract.Parse("contracts.yaml", []byte(`
types:
  trip.book:
    versions:
      1:
        deprecated: true
        schema:
          type: object
          required: [rider]
          properties:
            rider: {type: string}
      2:
        schema:
          type: object
          required: [rider, class]
          properties:
            rider: {type: string}
            class: {enum: [economy, comfort]}
`))
	if err != nil {
		fmt.Println(err)
		return
	}
	t := set.Types["trip.book"]
	fmt.Println(set.Names(), t.Numbers(), t.Latest().Schema.Required)
	// Output: [trip.book] [1 2] [rider class]
}

// Validate checks a decoded payload against the contract of its type and
// version; a MismatchError names the fields at fault.
func ExampleSet_Validate() {
	set, err := contract.Parse("contracts.yaml", []byte(`
types:
  trip.book:
    versions:
      2:
        schema:
          type: object
          required: [rider, class]
          properties:
            rider: {type: string, minLength: 1}
            class: {enum: [economy, comfort]}
`))
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(set.Validate("trip.book", 2, map[string]any{"rider": "ada", "class": "comfort"}))
	err = set.Validate("trip.book", 2, map[string]any{"rider": "", "class": "limo"})
	var me *contract.MismatchError
	if errors.As(err, &me) {
		for _, p := range me.Problems {
			fmt.Println(p)
		}
	}
	fmt.Println(errors.Is(set.Validate("trip.book", 1, nil), contract.ErrNoContract))
	// Output:
	// <nil>
	// /class: value must be one of 'economy', 'comfort'
	// /rider: minLength: got 0, want 1
	// true
}
