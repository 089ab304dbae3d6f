package build

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"path"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/coldstart-dev/coldstart/benchmarks/images"
)

// Version is the builder's version. It is part of every cache key: bump it
// when a change to the builder changes the images it makes.
const Version = "1"

// RecipeFile is the name of the recipe inside an image directory.
const RecipeFile = "recipe.json"

// Defaults for a recipe's base.
const (
	DefaultSuite   = "bookworm"
	DefaultVariant = "minbase"
	DefaultMirror  = "http://deb.debian.org/debian"
)

// DefaultReadyTimeout is how long Verify waits for the ready condition when
// the recipe gives no timeout.
const DefaultReadyTimeout = 60 * time.Second

// Recipe describes one benchmark image, as read from
// benchmarks/images/NAME/recipe.json. The image is a debootstrap base plus
// one layer per step, in order, with Config as its configuration.
type Recipe struct {
	// Name is the image directory's name.
	Name string `json:"-"`
	// Key identifies the recipe: a hash of every file in its directory and
	// of the builder Version. Image caches built images under it.
	Key string `json:"-"`

	Description string `json:"description"`
	// Base is the debootstrap base every chain of steps starts from.
	Base Base `json:"base"`
	// Stages are named builder chains (like a multi-stage Dockerfile's
	// earlier stages): each starts from Base, runs its steps, and is only
	// used as the source of copy steps with From set. They are not part of
	// the image.
	Stages map[string]Stage `json:"stages,omitempty"`
	// Steps make the image's layers, one layer per step.
	Steps  []Step `json:"steps"`
	Config Config `json:"config"`
	// Ready says when a started container is ready to serve.
	Ready Ready `json:"ready"`

	files fs.FS // the image directory: the copy steps' build context
}

// Base is a Debian root filesystem made by debootstrap.
type Base struct {
	// Suite defaults to DefaultSuite.
	Suite string `json:"suite,omitempty"`
	// Variant defaults to DefaultVariant.
	Variant string `json:"variant,omitempty"`
	// Mirror defaults to DefaultMirror; WithMirror overrides it.
	Mirror string `json:"mirror,omitempty"`
	// Include lists extra packages for debootstrap --include.
	Include []string `json:"include,omitempty"`
}

// Stage is a named chain of steps whose result copy steps can read.
type Stage struct {
	Steps []Step `json:"steps"`
}

// Step is one build step; exactly one of Run and Copy is set.
type Step struct {
	// Run is a shell command, run with /bin/sh -c as root in a chroot of
	// the image so far, with DEBIAN_FRONTEND=noninteractive, the image's
	// Env, the host's network and a copy of its /etc/resolv.conf.
	Run string `json:"run,omitempty"`
	// Copy is the source of a copy step: a path relative to the image
	// directory, or, with From, an absolute path in that stage. A
	// directory's contents are copied into To; a file is copied to To, or
	// into To when To ends in "/". Copies are owned by root unless Chown
	// says otherwise; the modes of stage files are kept.
	Copy string `json:"copy,omitempty"`
	// From names the stage Copy reads from.
	From string `json:"from,omitempty"`
	// To is the absolute destination of a copy step.
	To string `json:"to,omitempty"`
	// Mode is the octal mode of the regular files a copy step adds from the
	// image directory (default 0644; directories are 0755).
	Mode string `json:"mode,omitempty"`
	// Chown is a chown(1) owner spec (USER[:GROUP], names looked up in the
	// image) for what a copy step adds.
	Chown string `json:"chown,omitempty"`
	// Comment says why the step is there; it does not change the image.
	Comment string `json:"comment,omitempty"`
}

// Config is the image configuration a recipe sets.
type Config struct {
	Entrypoint   []string          `json:"entrypoint"`
	Cmd          []string          `json:"cmd,omitempty"`
	Env          []string          `json:"env,omitempty"`
	WorkingDir   string            `json:"workingDir,omitempty"`
	User         string            `json:"user,omitempty"`
	ExposedPorts []string          `json:"exposedPorts,omitempty"`
	Labels       map[string]string `json:"labels,omitempty"`
}

// Ready is the condition under which a started container counts as ready:
// a line of its output (stdout or stderr) matching Line, or a TCP port
// accepting connections. Exactly one is set.
type Ready struct {
	// Line is a regular expression (RE2 syntax) matched against each line.
	Line string
	// Port is a TCP port on the container's network.
	Port int
	// Timeout bounds the wait; DefaultReadyTimeout when the recipe gives none.
	Timeout time.Duration

	re *regexp.Regexp
}

type readyJSON struct {
	Line    string `json:"line,omitempty"`
	Port    int    `json:"port,omitempty"`
	Timeout string `json:"timeout,omitempty"`
}

// UnmarshalJSON reads {"line": RE, "port": N, "timeout": "60s"}.
func (r *Ready) UnmarshalJSON(b []byte) error {
	var j readyJSON
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&j); err != nil {
		return err
	}
	*r = Ready{Line: j.Line, Port: j.Port, Timeout: DefaultReadyTimeout}
	if j.Timeout != "" {
		d, err := time.ParseDuration(j.Timeout)
		if err != nil {
			return fmt.Errorf("ready timeout: %w", err)
		}
		r.Timeout = d
	}
	return nil
}

// MarshalJSON writes the form UnmarshalJSON reads.
func (r Ready) MarshalJSON() ([]byte, error) {
	j := readyJSON{Line: r.Line, Port: r.Port}
	if r.Timeout != 0 {
		j.Timeout = r.Timeout.String()
	}
	return json.Marshal(j)
}

// MatchLine reports whether line satisfies a Line condition. It is false
// for a Port condition.
func (r *Ready) MatchLine(line string) bool {
	if r.Line == "" {
		return false
	}
	re := r.re
	if re == nil {
		var err error
		if re, err = regexp.Compile(r.Line); err != nil {
			return false
		}
	}
	return re.MatchString(line)
}

// Names returns the names of the recipes in benchmarks/images, sorted.
func Names() []string {
	names, err := recipeNames(images.FS)
	if err != nil { // the embedded tree is fixed at build time; a test reads it
		panic(err)
	}
	return names
}

func recipeNames(fsys fs.FS) ([]string, error) {
	entries, err := fs.ReadDir(fsys, ".")
	if err != nil {
		return nil, err
	}
	var names []string
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		if _, err := fs.Stat(fsys, path.Join(e.Name(), RecipeFile)); err == nil {
			names = append(names, e.Name())
		}
	}
	sort.Strings(names)
	return names, nil
}

// Load reads and checks the recipe of the named benchmark image.
func Load(name string) (*Recipe, error) {
	return loadRecipe(images.FS, name)
}

var nameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_.-]*$`)

func loadRecipe(fsys fs.FS, name string) (*Recipe, error) {
	if !nameRE.MatchString(name) {
		return nil, fmt.Errorf("%w: %q (names are lower-case letters, digits, '.', '_' and '-')", ErrUnknownImage, name)
	}
	raw, err := fs.ReadFile(fsys, path.Join(name, RecipeFile))
	if errors.Is(err, fs.ErrNotExist) {
		names, _ := recipeNames(fsys)
		return nil, fmt.Errorf("%w: %q (known: %s)", ErrUnknownImage, name, strings.Join(names, ", "))
	}
	if err != nil {
		return nil, fmt.Errorf("reading recipe %s: %w", name, err)
	}
	sub, err := fs.Sub(fsys, name)
	if err != nil {
		return nil, err
	}
	r := &Recipe{Name: name, files: sub}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(r); err != nil {
		return nil, fmt.Errorf("%w: %s/%s: %w", ErrInvalidRecipe, name, RecipeFile, err)
	}
	if err := r.check(); err != nil {
		return nil, fmt.Errorf("%w: %s/%s: %w", ErrInvalidRecipe, name, RecipeFile, err)
	}
	if r.Key, err = hashTree(sub); err != nil {
		return nil, fmt.Errorf("hashing recipe %s: %w", name, err)
	}
	return r, nil
}

func (r *Recipe) check() error {
	if r.Base.Suite == "" {
		r.Base.Suite = DefaultSuite
	}
	if r.Base.Variant == "" {
		r.Base.Variant = DefaultVariant
	}
	if r.Base.Mirror == "" {
		r.Base.Mirror = DefaultMirror
	}
	if err := checkMirror(r.Base.Mirror); err != nil {
		return err
	}
	for _, p := range r.Base.Include {
		if !debPackageRE.MatchString(p) {
			return fmt.Errorf("base: %q is not a Debian package name", p)
		}
	}
	var errs []error
	for _, s := range slices.Sorted(maps.Keys(r.Stages)) {
		if !nameRE.MatchString(s) {
			errs = append(errs, fmt.Errorf("stage %q: names are lower-case letters, digits, '.', '_' and '-'", s))
		}
		st := r.Stages[s]
		if len(st.Steps) == 0 {
			errs = append(errs, fmt.Errorf("stage %q has no steps", s))
		}
		for i, step := range st.Steps {
			if step.From != "" {
				errs = append(errs, fmt.Errorf("stage %q step %d: copies from stages are only allowed in the image's steps", s, i+1))
				continue
			}
			if err := r.checkStep(step); err != nil {
				errs = append(errs, fmt.Errorf("stage %q step %d: %w", s, i+1, err))
			}
		}
	}
	if len(r.Steps) == 0 {
		errs = append(errs, errors.New("no steps"))
	}
	for i, step := range r.Steps {
		if err := r.checkStep(step); err != nil {
			errs = append(errs, fmt.Errorf("step %d: %w", i+1, err))
		}
	}
	if len(r.Config.Entrypoint) == 0 {
		errs = append(errs, errors.New("config: no entrypoint"))
	}
	if wd := r.Config.WorkingDir; wd != "" && !path.IsAbs(wd) {
		errs = append(errs, fmt.Errorf("config: workingDir %q is not absolute", wd))
	}
	for _, e := range r.Config.Env {
		if k, _, ok := strings.Cut(e, "="); !ok || k == "" {
			errs = append(errs, fmt.Errorf("config: env %q is not KEY=VALUE", e))
		}
	}
	for _, p := range r.Config.ExposedPorts {
		if !portRE.MatchString(p) {
			errs = append(errs, fmt.Errorf("config: exposed port %q is not PORT/tcp or PORT/udp", p))
		}
	}
	switch rd := &r.Ready; {
	case rd.Line != "" && rd.Port != 0:
		errs = append(errs, errors.New("ready: give a line or a port, not both"))
	case rd.Line != "":
		re, err := regexp.Compile(rd.Line)
		if err != nil {
			errs = append(errs, fmt.Errorf("ready: line: %w", err))
		}
		rd.re = re
	case rd.Port > 0 && rd.Port < 65536:
	case rd.Port != 0:
		errs = append(errs, fmt.Errorf("ready: port %d out of range", rd.Port))
	default:
		errs = append(errs, errors.New("ready: no condition (give a line regex or a port)"))
	}
	if r.Ready.Timeout == 0 {
		r.Ready.Timeout = DefaultReadyTimeout
	}
	if r.Ready.Timeout < 0 {
		errs = append(errs, errors.New("ready: negative timeout"))
	}
	return errors.Join(errs...)
}

var (
	debPackageRE = regexp.MustCompile(`^[a-z0-9][a-z0-9+.-]+$`)
	portRE       = regexp.MustCompile(`^[0-9]{1,5}/(tcp|udp)$`)
)

func checkMirror(m string) error {
	if !strings.HasPrefix(m, "http://") && !strings.HasPrefix(m, "https://") {
		return fmt.Errorf("mirror %q is not an http(s) URL", m)
	}
	if strings.ContainsAny(m, " \t\n'\"") {
		return fmt.Errorf("mirror %q contains blanks or quotes", m)
	}
	return nil
}

func (r *Recipe) checkStep(s Step) error {
	switch {
	case s.Run != "" && s.Copy != "":
		return errors.New("both run and copy")
	case s.Run != "":
		if s.From != "" || s.To != "" || s.Mode != "" || s.Chown != "" {
			return errors.New("from, to, mode and chown belong to copy steps")
		}
		return nil
	case s.Copy == "":
		return errors.New("neither run nor copy")
	}
	if !path.IsAbs(s.To) {
		return fmt.Errorf("copy %s: destination %q is not absolute", s.Copy, s.To)
	}
	if c := path.Clean(s.To); c == "/" || c == "/mnt" || strings.HasPrefix(c, "/mnt/") ||
		c == "/proc" || strings.HasPrefix(c, "/proc/") || c == "/dev" || strings.HasPrefix(c, "/dev/") {
		return fmt.Errorf("copy %s: destination %q is reserved", s.Copy, s.To)
	}
	if s.Chown != "" && !chownRE.MatchString(s.Chown) {
		return fmt.Errorf("copy %s: chown %q is not USER[:GROUP]", s.Copy, s.Chown)
	}
	if s.From != "" {
		if _, ok := r.Stages[s.From]; !ok {
			return fmt.Errorf("copy %s: no stage %q", s.Copy, s.From)
		}
		if !path.IsAbs(s.Copy) || path.Clean(s.Copy) == "/" {
			return fmt.Errorf("copy %s: a path in stage %q must be absolute and not /", s.Copy, s.From)
		}
		if s.Mode != "" {
			return fmt.Errorf("copy %s: mode applies to files from the image directory, not from a stage", s.Copy)
		}
		return nil
	}
	if s.Mode != "" {
		if _, err := parseMode(s.Mode); err != nil {
			return fmt.Errorf("copy %s: %w", s.Copy, err)
		}
	}
	if !fs.ValidPath(s.Copy) || s.Copy == "." || s.Copy == RecipeFile {
		return fmt.Errorf("copy %s: not a path inside the image directory", s.Copy)
	}
	if _, err := fs.Stat(r.files, s.Copy); err != nil {
		return fmt.Errorf("copy %s: %w", s.Copy, err)
	}
	return nil
}

var chownRE = regexp.MustCompile(`^[a-zA-Z0-9_][a-zA-Z0-9_.-]*(:[a-zA-Z0-9_][a-zA-Z0-9_.-]*)?$`)

func parseMode(s string) (uint32, error) {
	m, err := strconv.ParseUint(s, 8, 32)
	if err != nil || m&^0o7777 != 0 {
		return 0, fmt.Errorf("mode %q is not an octal file mode", s)
	}
	return uint32(m), nil
}

// hashTree hashes every regular file of fsys (path and content, in lexical
// order) together with the builder Version.
func hashTree(fsys fs.FS) (string, error) {
	h := sha256.New()
	fmt.Fprintf(h, "coldstart benchmark image builder %s\n", Version)
	err := fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			return nil
		}
		if !d.Type().IsRegular() {
			return fmt.Errorf("%s: not a regular file", p)
		}
		f, err := fsys.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		fh := sha256.New()
		n, err := io.Copy(fh, f)
		if err != nil {
			return err
		}
		fmt.Fprintf(h, "%q %d %x\n", p, n, fh.Sum(nil))
		return nil
	})
	if err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil))[:16], nil
}
