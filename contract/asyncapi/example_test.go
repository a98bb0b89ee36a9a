package asyncapi_test

import (
	"fmt"
	"log"
	"strings"

	"github.com/warrenmq/warren/contract"
	"github.com/warrenmq/warren/contract/asyncapi"
)

// Generate documents the taxi example: its exchanges and queues, a
// message per job type and contract version, and who sends and receives
// each job type.
func ExampleGenerate() {
	set, err := contract.Load("../../examples/taxi/topology.yaml")
	if err != nil {
		log.Fatal(err)
	}
	doc, err := asyncapi.Generate(set, asyncapi.Options{
		Title:   "Taxi",
		Version: "2.1.0",
		Servers: []string{"amqp://localhost:5672/"},
	})
	if err != nil {
		log.Fatal(err)
	}
	lines := strings.Split(string(doc), "\n")
	fmt.Println(strings.Join(lines[:4], "\n"))
	// Output:
	// asyncapi: 3.0.0
	// info:
	//   title: Taxi
	//   version: 2.1.0
}
