package profile

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"

	"github.com/coldstart-dev/coldstart/optimize/profile/internal/imagepath"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// Sources of a Profile.
const (
	// SourceStatic marks a profile predicted by Static without running anything.
	SourceStatic = "static"
	// SourceRun marks a profile recorded by running the entrypoint
	// (package run).
	SourceRun = "run"
	// SourceFile marks a profile imported from a file (ReadPathList,
	// ReadRecordIn).
	SourceFile = "file"
)

// Errors returned by this package; test with errors.Is.
var (
	// ErrSymlinkLoop reports a path whose resolution followed more than 40
	// symbolic links (ELOOP).
	ErrSymlinkLoop = imagepath.ErrSymlinkLoop
	// ErrNotRegular reports an Open of something that is not a regular file.
	ErrNotRegular = errors.New("not a regular file")
	// ErrInvalidProfile reports a profile document that cannot be used.
	ErrInvalidProfile = errors.New("invalid profile")
)

// Config mirrors the fields of an OCI image config that decide what a
// container runs at start.
type Config struct {
	Entrypoint []string
	Cmd        []string
	// Env holds KEY=VALUE pairs; PATH defaults to
	// /usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin when unset.
	Env []string
	// WorkingDir defaults to "/".
	WorkingDir string
	// User is "name", "uid", "name:group" or "uid:gid"; it picks the home
	// directory (from /etc/passwd) when Env has no HOME.
	User string
}

// ConfigOf returns the fields of an image config that decide what a
// container runs at start.
func ConfigOf(c v1.Config) Config {
	return Config{Entrypoint: c.Entrypoint, Cmd: c.Cmd, Env: c.Env, WorkingDir: c.WorkingDir, User: c.User}
}

// Profile is the start-up working set of an image: the files a container
// reads when it starts, in first-access order.
type Profile struct {
	Image    string `json:"image,omitempty"`
	Platform string `json:"platform,omitempty"`
	// Source is SourceStatic, SourceRun or SourceFile.
	Source string `json:"source"`
	// Files are absolute, clean paths inside the image, each at most once, in
	// the order they are first accessed. They name regular files and the
	// symbolic links met on the way to them; parent directories are implied.
	// A path list may also name a directory, which stands for itself alone.
	Files []string `json:"files"`
	// Warnings say what the profiler could not follow; the profile is still
	// usable.
	Warnings []string `json:"warnings,omitempty"`
	// ReadySeconds is how long the program took to be ready in the
	// profiler's run (from the exec of its entrypoint to the ready line or
	// port, every file on local disk, the page cache warm): the program's
	// own start, which the cost model adds to the runtime's. 0 when unknown
	// (static profiles, runs that ended without a ready condition).
	ReadySeconds float64 `json:"readySeconds,omitempty"`
}

// clone returns a copy of p that shares nothing with it.
func (p *Profile) clone() *Profile {
	c := *p
	if p.Files != nil {
		c.Files = append(make([]string, 0, len(p.Files)), p.Files...)
	}
	if p.Warnings != nil {
		c.Warnings = append(make([]string, 0, len(p.Warnings)), p.Warnings...)
	}
	return &c
}

// maxProfileBytes bounds a profile document read by ReadJSON.
const maxProfileBytes = 64 << 20

// WriteJSON writes p as indented JSON followed by a newline. The output is
// deterministic: the same profile gives the same bytes.
func (p *Profile) WriteJSON(w io.Writer) error {
	out := *p
	if out.Files == nil {
		out.Files = []string{}
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	if err := enc.Encode(&out); err != nil {
		return fmt.Errorf("writing profile: %w", err)
	}
	return nil
}

// WriteText writes p as a path list that ReadPathList reads back: a "#"
// line with the source, platform, image and number of files, a "# warning:"
// line per warning, then one path per line.
func (p *Profile) WriteText(w io.Writer) error {
	bw := bufio.NewWriter(w)
	fmt.Fprintf(bw, "# coldstart profile (%s)", p.Source)
	if p.Platform != "" {
		fmt.Fprintf(bw, " %s", p.Platform)
	}
	if p.Image != "" {
		fmt.Fprintf(bw, " %s", p.Image)
	}
	fmt.Fprintf(bw, ": %d files\n", len(p.Files))
	for _, warn := range p.Warnings {
		fmt.Fprintf(bw, "# warning: %s\n", strings.ReplaceAll(warn, "\n", " "))
	}
	for _, file := range p.Files {
		fmt.Fprintln(bw, file)
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("writing profile: %w", err)
	}
	return nil
}

// ReadJSON reads a profile written by WriteJSON (at most 64 MiB). It checks
// that the source is known and that every file is an absolute, clean path,
// and drops duplicates, keeping the first occurrence.
func ReadJSON(r io.Reader) (*Profile, error) {
	lr := &io.LimitedReader{R: r, N: maxProfileBytes + 1}
	dec := json.NewDecoder(lr)
	var p Profile
	if err := dec.Decode(&p); err != nil {
		if lr.N <= 0 {
			return nil, fmt.Errorf("reading profile: %w: larger than %d bytes", ErrInvalidProfile, maxProfileBytes)
		}
		return nil, fmt.Errorf("reading profile: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("reading profile: %w: data after the JSON object", ErrInvalidProfile)
	}
	switch p.Source {
	case SourceStatic, SourceRun, SourceFile:
	default:
		return nil, fmt.Errorf("reading profile: %w: unknown source %q (want %q, %q or %q)",
			ErrInvalidProfile, p.Source, SourceStatic, SourceRun, SourceFile)
	}
	files := make([]string, 0, len(p.Files))
	seen := make(map[string]bool, len(p.Files))
	for i, f := range p.Files {
		if !path.IsAbs(f) || path.Clean(f) != f || f == "/" {
			return nil, fmt.Errorf("reading profile: %w: files[%d] %q is not an absolute, clean file path", ErrInvalidProfile, i, f)
		}
		if !seen[f] {
			seen[f] = true
			files = append(files, f)
		}
	}
	p.Files = files
	return &p, nil
}
