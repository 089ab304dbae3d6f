package main

import (
	"maps"
	"testing"
)

func TestParseImageRuns(t *testing.T) {
	images := []string{"python", "shell"}
	for _, tc := range []struct {
		spec string
		want map[string]int
	}{
		{"", map[string]int{}},
		{"shell=7", map[string]int{"shell": 7}},
		{"shell=7,python=5", map[string]int{"shell": 7, "python": 5}},
	} {
		got, err := parseImageRuns(tc.spec, images)
		if err != nil || !maps.Equal(got, tc.want) {
			t.Errorf("parseImageRuns(%q) = %v, %v; want %v", tc.spec, got, err, tc.want)
		}
	}
	for _, bad := range []string{"shell", "shell=", "=3", "shell=0", "shell=x", "shell=7,", "shel=7"} {
		if got, err := parseImageRuns(bad, images); err == nil {
			t.Errorf("parseImageRuns(%q) = %v, want an error", bad, got)
		}
	}
}
