package main

import (
	"errors"
	"fmt"
	"strings"

	"github.com/coldstart-dev/coldstart"
	"github.com/spf13/cobra"
)

// errUsage marks errors that are the caller's: exit code 2.
var errUsage = errors.New("usage")

func exitCode(err error) int {
	if errors.Is(err, errUsage) || errors.Is(err, coldstart.ErrInvalid) {
		return 2
	}
	return 1
}

// message is the one line printed for err: the usage marker is not shown.
func message(err error) string {
	if errors.Is(err, errVerifyFailed) {
		return err.Error()
	}
	var parts []string
	for _, e := range unjoin(err) {
		if e != errUsage {
			parts = append(parts, e.Error())
		}
	}
	return strings.Join(parts, ": ")
}

func unjoin(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}

func usageErr(format string, args ...any) error {
	return errors.Join(errUsage, fmt.Errorf(format, args...))
}

// noArgs refuses arguments, suggesting a command for a mistyped one.
func noArgs(cmd *cobra.Command, args []string) error {
	if len(args) == 0 {
		return nil
	}
	msg := fmt.Sprintf("unknown command %q for %q", args[0], cmd.CommandPath())
	if s := cmd.SuggestionsFor(args[0]); len(s) > 0 {
		msg += fmt.Sprintf("; did you mean %q?", s[0])
	}
	return usageErr("%s (see '%s --help')", msg, cmd.CommandPath())
}

// exactArgs is cobra.ExactArgs with a message that names the command and
// its usage.
func exactArgs(n int) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) == n {
			return nil
		}
		return usageErr("%s takes %d argument(s), got %d: usage: %s", cmd.CommandPath(), n, len(args), cmd.UseLine())
	}
}
