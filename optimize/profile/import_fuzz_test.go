package profile

import (
	"bytes"
	"context"
	"testing"
)

// FuzzImport: the profile importers and the sniffer never panic, and what
// they accept is a list of absolute paths.
func FuzzImport(f *testing.F) {
	f.Add([]byte(`{"path":"usr/bin/python3"}` + "\n" + `{"path":"etc/passwd","layerIndex":0}`))
	f.Add([]byte(`{"source":"static","files":["/bin/sh","/etc/passwd"]}`))
	f.Add([]byte("/bin/sh\n# comment\n\n/usr/lib/../lib/x\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		check := func(p *Profile) {
			for _, f := range p.Files {
				if len(f) == 0 || f[0] != '/' {
					t.Fatalf("path %q is not absolute", f)
				}
			}
		}
		if p, err := ReadRecordIn(bytes.NewReader(data)); err == nil {
			check(p)
		}
		if p, err := ReadJSON(bytes.NewReader(data)); err == nil {
			_ = p
		}
		if p, err := ReadPathList(bytes.NewReader(data), nil); err == nil {
			check(p)
		}
		// The sniffer picks one of the readers; what it accepts gives
		// clean absolute paths, or an error for wildcards without an FS.
		if pr, err := Parse("fuzz", data); err == nil {
			if p, err := pr.Profile(context.Background(), nil, nil); err == nil {
				check(p)
			}
		}
	})
}
