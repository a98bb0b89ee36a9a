package main

import (
	"errors"
	"fmt"
)

// confirm asks question on the terminal and succeeds only on "yes".
// Without a terminal it returns a usage error: hint, saying what to pass
// instead.
func (g *globals) confirm(question, hint string) error {
	yes, err := g.ask(question)
	if errors.Is(err, errNoTerminal) {
		return usageError("%s (no terminal to ask on)", hint)
	}
	if err != nil {
		return fmt.Errorf("read the answer: %w", err)
	}
	if !yes {
		return &exitError{code: exitFailure, err: errors.New("not confirmed; nothing done")}
	}
	return nil
}
