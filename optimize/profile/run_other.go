//go:build !linux

package profile

import (
	"context"
	"fmt"
	"runtime"
)

func runSupported() error {
	return fmt.Errorf("%w: %s has no fanotify and no Linux namespaces", ErrRunUnsupported, runtime.GOOS)
}

func run(context.Context, Filler, Config, *runOptions) (*Profile, error) {
	return nil, runSupported()
}
