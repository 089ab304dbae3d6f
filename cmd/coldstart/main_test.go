package main

import (
	"os"
	"testing"
)

// TestMain keeps the tests' conversion cache out of the user's home.
func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "coldstart-cli-test-")
	if err != nil {
		panic(err)
	}
	os.Setenv("XDG_CACHE_HOME", dir)
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}
