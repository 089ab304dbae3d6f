package imageref

import (
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

func TestParsePlatforms(t *testing.T) {
	tests := []struct {
		in   string
		want PlatformSpec
		str  string
	}{
		{"all", PlatformSpec{All: true}, "all"},
		{" ALL ", PlatformSpec{All: true}, "all"},
		{"linux/amd64", PlatformSpec{Platforms: []v1.Platform{{OS: "linux", Architecture: "amd64"}}}, "linux/amd64"},
		{"linux/arm/v7", PlatformSpec{Platforms: []v1.Platform{{OS: "linux", Architecture: "arm", Variant: "v7"}}}, "linux/arm/v7"},
		{"Linux/X86_64", PlatformSpec{Platforms: []v1.Platform{{OS: "linux", Architecture: "amd64"}}}, "linux/amd64"},
		{"linux/aarch64/v8", PlatformSpec{Platforms: []v1.Platform{{OS: "linux", Architecture: "arm64", Variant: "v8"}}}, "linux/arm64/v8"},
		{"windows/amd64:10.0.17763", PlatformSpec{Platforms: []v1.Platform{{OS: "windows", Architecture: "amd64", OSVersion: "10.0.17763"}}}, "windows/amd64:10.0.17763"},
		{"linux/amd64, linux/arm64 ,linux/amd64", PlatformSpec{Platforms: []v1.Platform{
			{OS: "linux", Architecture: "amd64"}, {OS: "linux", Architecture: "arm64"},
		}}, "linux/amd64,linux/arm64"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParsePlatforms(tt.in)
			if err != nil {
				t.Fatalf("ParsePlatforms(%q): %v", tt.in, err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("ParsePlatforms(%q) mismatch (-want +got):\n%s", tt.in, diff)
			}
			if got.String() != tt.str {
				t.Errorf("String() = %q, want %q", got.String(), tt.str)
			}
		})
	}
}

func TestParsePlatformsErrors(t *testing.T) {
	for _, in := range []string{"", " ", "linux", "linux/", "/amd64", "linux/arm/v7/extra", "linux/amd64,", "all,linux/amd64", "linux/amd 64", "linux/amd64:"} {
		if got, err := ParsePlatforms(in); !errors.Is(err, ErrInvalidPlatform) {
			t.Errorf("ParsePlatforms(%q) = %+v, %v; want ErrInvalidPlatform", in, got, err)
		}
	}
}

func TestPlatformMatches(t *testing.T) {
	tests := []struct {
		have v1.Platform
		want string
		ok   bool
	}{
		{v1.Platform{OS: "linux", Architecture: "amd64"}, "linux/amd64", true},
		{v1.Platform{OS: "linux", Architecture: "amd64"}, "linux/arm64", false},
		{v1.Platform{OS: "linux", Architecture: "arm64"}, "linux/arm64/v8", true},
		{v1.Platform{OS: "linux", Architecture: "arm64", Variant: "v8"}, "linux/arm64", true},
		{v1.Platform{OS: "linux", Architecture: "arm", Variant: "v6"}, "linux/arm/v7", false},
		{v1.Platform{OS: "linux", Architecture: "arm", Variant: "v6"}, "linux/arm", true},
		{v1.Platform{OS: "windows", Architecture: "amd64", OSVersion: "10.0.1"}, "windows/amd64", true},
		{v1.Platform{OS: "windows", Architecture: "amd64", OSVersion: "10.0.1"}, "windows/amd64:10.0.2", false},
	}
	for _, tt := range tests {
		spec, err := ParsePlatforms(tt.want)
		if err != nil {
			t.Fatal(err)
		}
		if got := spec.Matches(tt.have); got != tt.ok {
			t.Errorf("%q.Matches(%s) = %v, want %v", tt.want, tt.have.String(), got, tt.ok)
		}
	}
	if !(PlatformSpec{}).Matches(v1.Platform{OS: "plan9", Architecture: "mips"}) {
		t.Error("zero PlatformSpec does not match everything")
	}
}
