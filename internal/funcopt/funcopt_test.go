package funcopt_test

import (
	"errors"
	"testing"

	"github.com/coldstart-dev/coldstart/internal/funcopt"
)

type options struct{ n int }

type Option func(*options) error

func TestApply(t *testing.T) {
	add := func(k int) Option { return func(o *options) error { o.n += k; return nil } }
	bad := errors.New("bad")
	o, err := funcopt.Apply(&options{n: 1}, []Option{add(2), nil, add(3)})
	if err != nil || o.n != 6 {
		t.Fatalf("got %+v, %v", o, err)
	}
	stop := Option(func(*options) error { return bad })
	if _, err := funcopt.Apply(&options{}, []Option{add(1), stop, add(1)}); !errors.Is(err, bad) {
		t.Fatalf("got %v, want the refusing option's error", err)
	}
}
