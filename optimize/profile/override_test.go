package profile

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestConfigApply(t *testing.T) {
	image := Config{Entrypoint: []string{"/app"}, Cmd: []string{"serve"}, Env: []string{"A=1"}, User: "app"}
	for _, tc := range []struct {
		name string
		o    Override
		want Config
	}{
		{"nothing", Override{}, image},
		{"command entrypoint drops cmd", Override{Entrypoint: "/bin/sh", SetEntrypoint: true},
			Config{Entrypoint: []string{"/bin/sh"}, Env: []string{"A=1"}, User: "app"}},
		{"json entrypoint and args", Override{Entrypoint: `["/bin/sh","-c"]`, SetEntrypoint: true, Cmd: []string{"exec app"}},
			Config{Entrypoint: []string{"/bin/sh", "-c"}, Cmd: []string{"exec app"}, Env: []string{"A=1"}, User: "app"}},
		{"cleared entrypoint", Override{SetEntrypoint: true}, Config{Env: []string{"A=1"}, User: "app"}},
		{"args, env, user", Override{Cmd: []string{"check"}, Env: []string{"B=2", "A=3"}, User: "0:0", SetUser: true},
			Config{Entrypoint: []string{"/app"}, Cmd: []string{"check"}, Env: []string{"A=1", "B=2", "A=3"}, User: "0:0"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := image
			c.Env = append([]string(nil), image.Env...)
			if err := c.Apply(tc.o); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, c); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
	for _, bad := range []Override{{Entrypoint: `["/bin/sh",`, SetEntrypoint: true}, {Env: []string{"NOEQUALS"}}, {Env: []string{"=x"}}} {
		c := image
		if err := c.Apply(bad); err == nil {
			t.Errorf("%+v: no error", bad)
		} else if diff := cmp.Diff(image, c); diff != "" {
			t.Errorf("%+v: failed Apply changed the config:\n%s", bad, diff)
		}
	}
}
