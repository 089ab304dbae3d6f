//go:build !linux

package build

import (
	"context"
	"fmt"
	"runtime"
	"time"
)

// RunResult is what Verify saw.
type RunResult struct {
	Ready  time.Duration
	Output string
}

// Image builds a benchmark image; it needs Linux.
func Image(context.Context, string, ...Option) (string, *Recipe, error) {
	return "", nil, fmt.Errorf("%w: needs Linux, not %s", ErrUnsupported, runtime.GOOS)
}

// BaseImage makes a benchmark image's base; it needs Linux.
func BaseImage(context.Context, string, ...Option) (string, error) {
	return "", fmt.Errorf("%w: needs Linux, not %s", ErrUnsupported, runtime.GOOS)
}

// Verify runs a benchmark image; it needs Linux.
func Verify(context.Context, string, *Recipe, ...Option) (*RunResult, error) {
	return nil, fmt.Errorf("%w: needs Linux, not %s", ErrUnsupported, runtime.GOOS)
}
