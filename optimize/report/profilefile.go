package report

import (
	"bytes"
	"context"
	"errors"
	"fmt"

	"github.com/coldstart-dev/coldstart/optimize/profile"
)

// ProfileFromFile returns a Profiler that reads the start-up files from a
// file's contents, whatever its format: a profile written by
// profile.WriteJSON, the JSON lines of `ctr-remote image optimize
// --record-out` (nerdctl's --estargz-record-in), or a path list, one path
// per line, with wildcards expanded against the image (profile.ReadPathList).
func ProfileFromFile(data []byte) Profiler {
	return func(ctx context.Context, fsys profile.FS, _ profile.Config) (*profile.Profile, error) {
		if t := bytes.TrimSpace(data); len(t) > 0 && t[0] == '{' {
			p, err := profile.ReadJSON(bytes.NewReader(data))
			if err == nil {
				return p, nil
			}
			p, err2 := profile.ReadRecordIn(bytes.NewReader(data))
			if err2 == nil {
				return p, nil
			}
			return nil, fmt.Errorf("reading the profile: %w", errors.Join(err, err2))
		}
		return profile.ReadPathList(bytes.NewReader(data), fsys)
	}
}
