// Command coldstart makes container images start fast. See README.md.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := newRoot().ExecuteContext(ctx)
	// Read before stop, which cancels ctx too: a signal makes the cause
	// "interrupt signal received", which code that returns ctx.Err() loses.
	cause := context.Cause(ctx)
	stop()
	if err != nil {
		msg := message(err)
		if cause != nil && errors.Is(err, context.Canceled) && !strings.Contains(msg, cause.Error()) {
			msg += " (" + cause.Error() + ")"
		}
		fmt.Fprintln(os.Stderr, "coldstart:", msg)
		os.Exit(exitCode(err))
	}
}
