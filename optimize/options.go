package optimize

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/coldstart-dev/coldstart/layers"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// Option configures Analyze, IndexImage and Optimize.
type Option func(*options) error

type options struct {
	concurrency  int
	logger       *slog.Logger
	indexOptions []layers.Option
}

// DefaultConcurrency is how many layers are read or converted at once by
// default.
const DefaultConcurrency = 3

func makeOptions(opts []Option) (*options, error) {
	o := &options{
		concurrency: DefaultConcurrency,
		logger:      slog.New(slog.DiscardHandler),
	}
	for _, opt := range opts {
		if err := opt(o); err != nil {
			return nil, err
		}
	}
	o.indexOptions = append(o.indexOptions, layers.WithLogger(o.logger))
	return o, nil
}

// WithConcurrency sets how many layers are read or converted at once. The
// default is DefaultConcurrency (3, as containerd downloads). Output never
// depends on it.
func WithConcurrency(n int) Option {
	return func(o *options) error {
		if n < 1 {
			return fmt.Errorf("concurrency must be at least 1, got %d", n)
		}
		o.concurrency = n
		return nil
	}
}

// WithLogger sets the logger. The default discards everything.
func WithLogger(l *slog.Logger) Option {
	return func(o *options) error {
		if l == nil {
			return errors.New("nil logger")
		}
		o.logger = l
		return nil
	}
}

// WithIndexOptions passes options to layers.IndexLayer, such as limits on
// entries and uncompressed size. The default is layers' defaults.
func WithIndexOptions(opts ...layers.Option) Option {
	return func(o *options) error {
		o.indexOptions = append(o.indexOptions, opts...)
		return nil
	}
}

func (o *options) index(ctx context.Context, l v1.Layer) (*layers.Index, error) {
	return layers.IndexLayer(ctx, l, o.indexOptions...)
}
