// Package topotest applies topology files for tests against the shared
// broker, and deletes what they declared when the test ends.
//
// topotest is test scaffolding, never imported by product code; it
// declares through broker and topology as the CLI does.
package topotest
