package profile

import (
	"bytes"
	"testing"
)

// FuzzImport: the profile importers never panic, and what they accept is
// a list of clean absolute paths.
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
	})
}
