package profile

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
)

// Override is what "docker run" can change of what a container runs. The
// zero Override changes nothing.
type Override struct {
	// Entrypoint, when SetEntrypoint, replaces the entrypoint as
	// --entrypoint does: a command, or a JSON array of strings such as
	// `["/bin/sh","-c"]`; "" clears it. The image's Cmd is dropped with
	// it, unless Cmd is given.
	Entrypoint    string
	SetEntrypoint bool
	// Cmd, when not nil, replaces the image's Cmd (the arguments after the
	// image).
	Cmd []string
	// Env adds KEY=VALUE pairs, after the image's (the last one wins).
	Env []string
	// User, when SetUser, replaces the user: NAME|UID[:GROUP|GID].
	User    string
	SetUser bool
}

// Apply changes c as o says. It returns an error for an entrypoint that
// starts with "[" but is not a JSON array of strings ("entrypoint ...:"),
// or an Env entry that is not KEY=VALUE ("env ...:"); c is unchanged then.
func (c *Config) Apply(o Override) error {
	n := *c
	if o.SetEntrypoint {
		n.Entrypoint, n.Cmd = nil, nil
		switch e := strings.TrimSpace(o.Entrypoint); {
		case strings.HasPrefix(e, "["):
			if err := json.Unmarshal([]byte(e), &n.Entrypoint); err != nil {
				return fmt.Errorf("entrypoint %s: not a JSON array of strings: %w", o.Entrypoint, err)
			}
		case o.Entrypoint != "":
			n.Entrypoint = []string{o.Entrypoint}
		}
	}
	if o.Cmd != nil {
		n.Cmd = slices.Clone(o.Cmd)
	}
	for _, kv := range o.Env {
		if k, _, ok := strings.Cut(kv, "="); !ok || k == "" {
			return fmt.Errorf("env %q: want KEY=VALUE", kv)
		}
		n.Env = append(slices.Clip(n.Env), kv)
	}
	if o.SetUser {
		n.User = o.User
	}
	*c = n
	return nil
}
