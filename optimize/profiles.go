package optimize

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"

	"github.com/coldstart-dev/coldstart/optimize/profile"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// FileProfiler returns a Profiler that reads start-up files from a file:
// a profile JSON document ({"files": [...]}, as "coldstart profile" writes),
// a ctr-remote / nerdctl record file (JSON lines of {"path": ...}), or a
// plain list of paths, one per line, with "*", "?" and "**" wildcards
// expanded against each image's filesystem in sorted order.
func FileProfiler(path string) (Profiler, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading profile: %w", err)
	}
	trimmed := bytes.TrimSpace(data)
	var probe map[string]json.RawMessage
	switch {
	case json.Unmarshal(trimmed, &probe) == nil && probe["files"] != nil:
		p, err := profile.ReadJSON(bytes.NewReader(data))
		if err != nil {
			return nil, fmt.Errorf("profile %s: %w", path, err)
		}
		return func(context.Context, v1.Image, profile.FS) (*profile.Profile, error) { return p, nil }, nil
	case bytes.HasPrefix(trimmed, []byte("{")):
		p, err := profile.ReadRecordIn(bytes.NewReader(data))
		if err != nil {
			return nil, fmt.Errorf("profile %s: %w", path, err)
		}
		return func(context.Context, v1.Image, profile.FS) (*profile.Profile, error) { return p, nil }, nil
	}
	return func(_ context.Context, _ v1.Image, fsys profile.FS) (*profile.Profile, error) {
		p, err := profile.ReadPathList(bytes.NewReader(data), fsys)
		if err != nil {
			return nil, fmt.Errorf("profile %s: %w", path, err)
		}
		return p, nil
	}, nil
}
