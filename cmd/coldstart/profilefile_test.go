package main

import (
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestProfileFileRejected checks that optimize and report refuse a
// --profile file in none of the profile formats (issue #16: random bytes
// were read as a path list that matched nothing, exit 0), before reading
// the image, with a usage error that names the file and the formats.
func TestProfileFileRejected(t *testing.T) {
	ref := scriptImage(t)
	dir := t.TempDir()
	junk := filepath.Join(dir, "random.bin")
	b := make([]byte, 1024)
	r := rand.New(rand.NewPCG(16, 6))
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	if err := os.WriteFile(junk, b, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"optimize", "--profile", junk, ref, "oci:" + filepath.Join(dir, "out")},
		{"report", "--profile", junk, ref},
	} {
		_, errOut, code := run(t, args...)
		if code != 2 || !strings.Contains(errOut, "profile "+junk+": not a profile") || !strings.Contains(errOut, "path list") {
			t.Errorf("%s: exit %d, stderr %q", args[0], code, errOut)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "out")); !os.IsNotExist(err) {
		t.Errorf("optimize wrote its output: %v", err)
	}
}
