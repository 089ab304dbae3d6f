package main

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// TestMain keeps the tests' conversion cache out of the user's home.
func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "coldstart-cli-test-")
	if err != nil {
		panic(err)
	}
	// Moving XDG_CACHE_HOME would also move Go's build cache, which tests
	// that build the binary use: pin it first.
	if os.Getenv("GOCACHE") == "" {
		if out, err := exec.Command("go", "env", "GOCACHE").Output(); err == nil {
			os.Setenv("GOCACHE", strings.TrimSpace(string(out)))
		}
	}
	os.Setenv("XDG_CACHE_HOME", dir)
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}
