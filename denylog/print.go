package denylog

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
)

// Printer returns a function that writes each event to w as `dockerfence
// logs` prints it: its Line, or with asJSON one JSON object a line (the
// schema of `logs --json`).
func Printer(w io.Writer, asJSON bool) func(Event) error {
	if asJSON {
		enc := json.NewEncoder(w)
		return func(e Event) error { return enc.Encode(e) }
	}
	return func(e Event) error {
		_, err := fmt.Fprintln(w, e.Line())
		return err
	}
}

// Print reads src as Run does, but hands each event to print rather than
// to Publish, until ctx ends. The first error of print (its output is
// gone) ends the reading, and Print returns it.
func (r Reader) Print(ctx context.Context, src Source, print func(Event) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var printErr error
	r.Publish = func(e Event) {
		if printErr == nil {
			if printErr = print(e); printErr != nil {
				cancel() // stdout is gone
			}
		}
	}
	if err := r.Run(ctx, src); err != nil {
		return err
	}
	return printErr
}
