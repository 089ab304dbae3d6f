package main

import (
	"strings"
	"testing"
)

// TestSummary: packages are listed as they finish, a failed test's output
// is shown, every skipped test is listed with its reason, and the verdict
// follows the events.
func TestSummary(t *testing.T) {
	const in = `{"Action":"run","Package":"example.com/m/a","Test":"TestSkip"}
{"Action":"output","Package":"example.com/m/a","Test":"TestSkip","Output":"=== RUN   TestSkip\n"}
{"Action":"output","Package":"example.com/m/a","Test":"TestSkip","Output":"    a_test.go:12: docker-registry not installed (apt-get install docker-registry)\n"}
{"Action":"output","Package":"example.com/m/a","Test":"TestSkip","Output":"--- SKIP: TestSkip (0.00s)\n"}
{"Action":"skip","Package":"example.com/m/a","Test":"TestSkip","Elapsed":0}
{"Action":"pass","Package":"example.com/m/a","Test":"TestOK","Elapsed":0.1}
{"Action":"pass","Package":"example.com/m/a","Elapsed":1.5}
{"Action":"skip","Package":"example.com/m/nothing","Elapsed":0}
`
	var b strings.Builder
	s := &summary{out: &b, outputs: map[[2]string][]string{}}
	if err := s.read(strings.NewReader(in)); err != nil {
		t.Fatal(err)
	}
	s.finish()
	out := b.String()
	for _, want := range []string{"ok    example.com/m/a\t1.5s", "SKIP example.com/m/a TestSkip: docker-registry not installed (apt-get install docker-registry) (a_test.go:12)",
		"PASS: 1 packages, 1 tests passed, 0 failed, 1 skipped"} {
		if !strings.Contains(out, want) {
			t.Errorf("no %q in\n%s", want, out)
		}
	}
	if s.bad {
		t.Error("a passing run is a failure")
	}

	const failing = `{"Action":"output","Package":"example.com/m/b","Test":"TestBad","Output":"    b_test.go:3: got 1, want 2\n"}
{"Action":"fail","Package":"example.com/m/b","Test":"TestBad","Elapsed":0.2}
{"Action":"fail","Package":"example.com/m/b","Elapsed":0.3}
`
	b.Reset()
	s = &summary{out: &b, outputs: map[[2]string][]string{}}
	if err := s.read(strings.NewReader(failing + "not json\n")); err != nil {
		t.Fatal(err)
	}
	s.finish()
	out = b.String()
	for _, want := range []string{"--- FAIL: example.com/m/b TestBad", "b_test.go:3: got 1, want 2", "FAIL  example.com/m/b", "not json", "FAIL: 1 packages"} {
		if !strings.Contains(out, want) {
			t.Errorf("no %q in\n%s", want, out)
		}
	}
	if !s.bad {
		t.Error("a failing run passes")
	}
}
