//go:build !linux

package run

import (
	"context"
	"fmt"
	"runtime"

	"github.com/coldstart-dev/coldstart/optimize/profile"
)

func supported() error {
	return fmt.Errorf("%w: %s has no fanotify and no Linux namespaces", ErrUnsupported, runtime.GOOS)
}

func record(context.Context, Filler, profile.Config, *options) (*profile.Profile, error) {
	return nil, supported()
}
