// Command testsummary reads `go test -json` on standard input and writes
// what a person wants from it: a line per package as it finishes, the
// output of every failed test, and at the end every skipped test with the
// reason it gave, so that a run says what did not run and why.
//
//	go test -json ./... | go run ./internal/testsummary
//
// It exits 1 when a test or a package failed, a package did not build, or
// the input was not test events, and 0 otherwise.
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
)

// event is one line of `go test -json` (see go doc test2json).
type event struct {
	Action  string
	Package string
	Test    string
	Elapsed float64
	Output  string
}

// skip is a skipped test and why.
type skip struct {
	pkg, test, reason string
}

type summary struct {
	out      io.Writer
	outputs  map[[2]string][]string // package, test -> output lines
	skips    []skip
	passed   int
	failed   int
	packages int
	bad      bool // a failure, or input that is not test events
}

func main() {
	s := &summary{out: os.Stdout, outputs: map[[2]string][]string{}}
	if err := s.read(os.Stdin); err != nil {
		fmt.Fprintln(os.Stderr, "testsummary:", err)
		os.Exit(1)
	}
	s.finish()
	if s.bad {
		os.Exit(1)
	}
}

func (s *summary) read(r io.Reader) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	for sc.Scan() {
		line := sc.Bytes()
		var e event
		if err := json.Unmarshal(line, &e); err != nil || e.Action == "" {
			// Not an event: go test's own complaint, say. Show it.
			fmt.Fprintln(s.out, string(line))
			s.bad = true
			continue
		}
		s.handle(e)
	}
	return sc.Err()
}

func (s *summary) handle(e event) {
	k := [2]string{e.Package, e.Test}
	pkg := e.Package
	switch e.Action {
	case "output", "build-output":
		s.outputs[k] = append(s.outputs[k], e.Output)
	case "build-fail":
		s.bad = true
	case "pass":
		if e.Test == "" {
			s.packages++
			fmt.Fprintf(s.out, "ok    %s\t%.1fs\n", pkg, e.Elapsed)
		} else {
			s.passed++
		}
		delete(s.outputs, k)
	case "fail":
		s.bad = true
		if e.Test == "" {
			s.packages++
			fmt.Fprintf(s.out, "FAIL  %s\t%.1fs\n", pkg, e.Elapsed)
			s.show("  ", s.outputs[k])
		} else {
			s.failed++
			fmt.Fprintf(s.out, "--- FAIL: %s %s (%.2fs)\n", pkg, e.Test, e.Elapsed)
			s.show("    ", s.outputs[k])
		}
		delete(s.outputs, k)
	case "skip":
		if e.Test == "" {
			delete(s.outputs, k) // a package without tests
			return
		}
		s.skips = append(s.skips, skip{pkg, e.Test, reason(s.outputs[k])})
		delete(s.outputs, k)
	}
}

// show writes output lines, indented, without go test's framing.
func (s *summary) show(indent string, lines []string) {
	for _, l := range lines {
		if t := strings.TrimSpace(l); t == "" || strings.HasPrefix(t, "=== ") {
			continue
		}
		fmt.Fprint(s.out, indent+strings.TrimLeft(l, " "))
		if !strings.HasSuffix(l, "\n") {
			fmt.Fprintln(s.out)
		}
	}
}

// reason is what a skipped test said, without go test's framing lines.
func reason(lines []string) string {
	var parts []string
	for _, l := range lines {
		t := strings.TrimSpace(l)
		if t == "" || strings.HasPrefix(t, "=== ") || strings.HasPrefix(t, "--- SKIP") {
			continue
		}
		// "file_test.go:12: why" -> "why (file_test.go:12)"
		if loc, msg, ok := strings.Cut(t, ": "); ok && strings.Contains(loc, ".go:") && !strings.Contains(loc, " ") {
			t = msg + " (" + loc + ")"
		}
		parts = append(parts, t)
	}
	if len(parts) == 0 {
		return "(no reason given)"
	}
	return strings.Join(parts, "; ")
}

func (s *summary) finish() {
	if len(s.skips) > 0 {
		slices.SortFunc(s.skips, func(a, b skip) int {
			return strings.Compare(a.pkg+" "+a.test, b.pkg+" "+b.test)
		})
		fmt.Fprintf(s.out, "\n%d test(s) skipped — not run, and why:\n", len(s.skips))
		for _, k := range s.skips {
			fmt.Fprintf(s.out, "  SKIP %s %s: %s\n", strings.TrimPrefix(k.pkg, "github.com/coldstart-dev/coldstart/"), k.test, k.reason)
		}
	}
	if s.packages == 0 {
		s.bad = true
	}
	verdict := "PASS"
	if s.bad {
		verdict = "FAIL"
	}
	fmt.Fprintf(s.out, "\n%s: %d packages, %d tests passed, %d failed, %d skipped\n", verdict, s.packages, s.passed, s.failed, len(s.skips))
}
