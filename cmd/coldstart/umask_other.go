//go:build !unix

package main

import "os"

// umask returns the usual file mode creation mask.
func umask() os.FileMode { return 0o022 }
