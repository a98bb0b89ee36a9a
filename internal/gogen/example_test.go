package gogen_test

import (
	"fmt"
	"strings"

	"github.com/warrenmq/warren/contract"
	"github.com/warrenmq/warren/internal/gogen"
)

func ExampleGenerate() {
	set, err := contract.Parse("contracts.yaml", []byte(`
types:
  trip.book:
    versions:
      1:
        schema:
          type: object
          required: [trip_id]
          properties:
            trip_id: {type: string}
            class: {type: string, enum: [economy, comfort]}
`))
	if err != nil {
		fmt.Println(err)
		return
	}
	src, err := gogen.Generate(set, gogen.Options{Package: "trips", Source: "contracts.yaml", Output: "contracts.go"})
	if err != nil {
		fmt.Println(err)
		return
	}
	// The declarations, without their comments.
	for _, line := range strings.Split(string(src), "\n") {
		if strings.HasPrefix(line, "func ") || strings.HasPrefix(line, "type ") || strings.HasPrefix(line, "const ") || strings.HasPrefix(line, "\tTripBook") {
			fmt.Println(line)
		}
	}
	// Output:
	// type Publisher interface {
	// const TripBookType = "trip.book"
	// type TripBookV1 struct {
	// type TripBookV1Class string
	// const (
	// 	TripBookV1ClassEconomy TripBookV1Class = "economy"
	// 	TripBookV1ClassComfort TripBookV1Class = "comfort"
	// func PublishTripBookV1(ctx context.Context, p Publisher, v TripBookV1, opts ...broker.PublishOption) error {
	// func HandleTripBookV1(m *worker.Mux, h func(ctx context.Context, job *worker.Job, v TripBookV1) error) {
}
