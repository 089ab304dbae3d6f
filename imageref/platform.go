package imageref

import (
	"fmt"
	"regexp"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// PlatformSpec says which platforms of a multi-platform image to keep.
//
// The zero PlatformSpec, like one with All set, keeps everything: an index
// stays the same index (byte-identical) and an image stays the image.
type PlatformSpec struct {
	// All keeps every platform.
	All bool
	// Platforms lists the wanted platforms. A field left empty (Variant,
	// OSVersion) matches any value.
	Platforms []v1.Platform
}

// IsAll reports whether s keeps every platform.
func (s PlatformSpec) IsAll() bool {
	return s.All || len(s.Platforms) == 0
}

// String formats s in the form ParsePlatforms accepts.
func (s PlatformSpec) String() string {
	if s.IsAll() {
		return "all"
	}
	parts := make([]string, len(s.Platforms))
	for i, p := range s.Platforms {
		parts[i] = p.String()
	}
	return strings.Join(parts, ",")
}

// Matches reports whether an image of platform p is wanted.
func (s PlatformSpec) Matches(p v1.Platform) bool {
	if s.IsAll() {
		return true
	}
	for _, want := range s.Platforms {
		if platformMatches(p, want) {
			return true
		}
	}
	return false
}

var platformPart = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]*$`)

// ParsePlatforms parses a platform list:
//
//	all                                every platform
//	OS/ARCH[/VARIANT][:OSVERSION]      one platform, e.g. linux/arm/v7
//	P1,P2,...                          several
//
// Names are lower-cased; the architecture aliases x86_64 and aarch64 are
// read as amd64 and arm64; a platform listed twice counts once. When matching,
// an arm64 image without a variant counts as arm64/v8.
func ParsePlatforms(s string) (PlatformSpec, error) {
	trimmed := strings.TrimSpace(s)
	if trimmed == "" {
		return PlatformSpec{}, fmt.Errorf("%w: empty platform list (want \"all\" or OS/ARCH[/VARIANT][,...])", ErrInvalidPlatform)
	}
	if strings.EqualFold(trimmed, "all") {
		return PlatformSpec{All: true}, nil
	}
	var spec PlatformSpec
	for item := range strings.SplitSeq(trimmed, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			return PlatformSpec{}, fmt.Errorf("%w: %q: empty entry in the list", ErrInvalidPlatform, s)
		}
		if strings.EqualFold(item, "all") {
			return PlatformSpec{}, fmt.Errorf("%w: %q: \"all\" cannot be combined with other platforms", ErrInvalidPlatform, s)
		}
		p, err := parsePlatform(item)
		if err != nil {
			return PlatformSpec{}, err
		}
		dup := false
		for _, q := range spec.Platforms {
			if q.Equals(p) {
				dup = true
				break
			}
		}
		if !dup {
			spec.Platforms = append(spec.Platforms, p)
		}
	}
	return spec, nil
}

func parsePlatform(item string) (v1.Platform, error) {
	main, osVersion, hasVersion := strings.Cut(item, ":")
	parts := strings.Split(strings.ToLower(main), "/")
	if len(parts) < 2 || len(parts) > 3 {
		return v1.Platform{}, fmt.Errorf("%w: %q: want OS/ARCH[/VARIANT][:OSVERSION]", ErrInvalidPlatform, item)
	}
	for _, part := range parts {
		if !platformPart.MatchString(part) {
			return v1.Platform{}, fmt.Errorf("%w: %q: %q is not a valid OS, architecture or variant name", ErrInvalidPlatform, item, part)
		}
	}
	if hasVersion && strings.TrimSpace(osVersion) == "" {
		return v1.Platform{}, fmt.Errorf("%w: %q: empty OS version after \":\"", ErrInvalidPlatform, item)
	}
	p := v1.Platform{OS: parts[0], Architecture: normalizeArch(parts[1]), OSVersion: osVersion}
	if len(parts) == 3 {
		p.Variant = parts[2]
	}
	return p, nil
}

func normalizeArch(arch string) string {
	switch arch {
	case "x86_64", "x86-64":
		return "amd64"
	case "aarch64":
		return "arm64"
	}
	return arch
}

// platformMatches reports whether an image of platform have satisfies want;
// fields empty in want match anything.
func platformMatches(have, want v1.Platform) bool {
	have.OS = strings.ToLower(have.OS)
	have.Architecture = normalizeArch(strings.ToLower(have.Architecture))
	if have.Architecture == "arm64" && have.Variant == "" {
		have.Variant = "v8"
	}
	return have.Satisfies(want)
}

// platformString formats p, or "unknown platform" for nil or empty.
func platformString(p *v1.Platform) string {
	if p == nil || p.String() == "" {
		return "unknown platform"
	}
	return p.String()
}
