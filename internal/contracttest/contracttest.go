// Package contracttest holds the contracts and payloads that the tests and
// benchmarks of broker and worker share: one typical ten-field payload
// (Invoice) and two versions of trip.book (Trips).
package contracttest

import (
	"testing"
	"time"

	"github.com/warrenmq/warren/contract"
)

// InvoiceType is the job type of Invoices.
const InvoiceType = "invoice.render"

// Invoices declares invoice.render v1: a typical payload of ten fields,
// each with a constraint.
const Invoices = `
version: 1
types:
  invoice.render:
    versions:
      1:
        schema:
          type: object
          required: [invoice, customer, currency, amount, lines, issued, paid, tags]
          properties:
            invoice: {type: string, format: uuid}
            customer: {type: string, minLength: 1, maxLength: 64}
            email: {type: string, format: email}
            currency: {enum: [EUR, USD, GBP]}
            amount: {type: integer, minimum: 1}
            tax: {type: number, minimum: 0, maximum: 1}
            lines: {type: integer, minimum: 1, maximum: 500}
            issued: {type: string, format: date-time}
            paid: {type: boolean}
            tags: {type: array, items: {type: string}, maxItems: 8}
`

// Invoice is the payload Invoices declares.
type Invoice struct {
	Invoice  string    `json:"invoice"`
	Customer string    `json:"customer"`
	Email    string    `json:"email"`
	Currency string    `json:"currency"`
	Amount   int64     `json:"amount"`
	Tax      float64   `json:"tax"`
	Lines    int       `json:"lines"`
	Issued   time.Time `json:"issued"`
	Paid     bool      `json:"paid"`
	Tags     []string  `json:"tags"`
}

// NewInvoice returns an Invoice that fits its contract.
func NewInvoice() Invoice {
	return Invoice{
		Invoice: "0193a1c2-7d4e-7f00-8a1b-2c3d4e5f6a7b", Customer: "ACME Corporation", Email: "billing@acme.example",
		Currency: "EUR", Amount: 129900, Tax: 0.2, Lines: 12, Issued: time.Date(2026, 12, 6, 9, 30, 0, 0, time.UTC),
		Tags: []string{"monthly", "priority"},
	}
}

// Trips declares two versions of trip.book; v2 adds the class of car.
const Trips = `
version: 1
types:
  trip.book:
    versions:
      1:
        schema:
          type: object
          required: [rider]
          properties:
            rider: {type: string, minLength: 1}
            seats: {type: integer, minimum: 1, maximum: 8}
      2:
        schema:
          type: object
          required: [rider, class]
          properties:
            rider: {type: string, minLength: 1}
            seats: {type: integer, minimum: 1, maximum: 8}
            class: {enum: [standard, comfort, van]}
`

// Parse reads src, a contracts file's contents, failing tb when it does
// not load.
func Parse(tb testing.TB, src string) *contract.Set {
	tb.Helper()
	set, err := contract.Parse("contracts.yaml", []byte(src))
	if err != nil {
		tb.Fatal(err)
	}
	return set
}
