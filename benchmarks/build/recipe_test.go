package build

import (
	"encoding/json"
	"errors"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/google/go-cmp/cmp"
)

// Every directory of benchmarks/images with a recipe is embedded, and
// nothing else is.
func TestNamesMatchDirectories(t *testing.T) {
	entries, err := os.ReadDir("../images")
	if err != nil {
		t.Fatal(err)
	}
	var dirs []string
	for _, e := range entries {
		if _, err := os.Stat("../images/" + e.Name() + "/" + RecipeFile); e.IsDir() && err == nil {
			dirs = append(dirs, e.Name())
		}
	}
	if d := cmp.Diff(dirs, Names()); d != "" {
		t.Errorf("Names() vs benchmarks/images (-dirs +Names; add new recipes to the go:embed line of images.go):\n%s", d)
	}
	for _, want := range []string{"jvm", "messy", "node", "python", "shell"} {
		if !slices.Contains(Names(), want) {
			t.Errorf("no recipe %q", want)
		}
	}
}

func TestLoadAll(t *testing.T) {
	keyRE := regexp.MustCompile(`^[0-9a-f]{16}$`)
	keys := map[string]string{}
	for _, name := range Names() {
		r, err := Load(name)
		if err != nil {
			t.Errorf("Load(%s): %v", name, err)
			continue
		}
		if r.Name != name || !keyRE.MatchString(r.Key) {
			t.Errorf("%s: name %q key %q", name, r.Name, r.Key)
		}
		if other, dup := keys[r.Key]; dup {
			t.Errorf("%s and %s have the same key", name, other)
		}
		keys[r.Key] = name
		if again, _ := Load(name); again.Key != r.Key {
			t.Errorf("%s: key changed between loads", name)
		}
		if d := cmp.Diff(Base{Suite: DefaultSuite, Variant: DefaultVariant, Mirror: DefaultMirror}, r.Base); d != "" {
			t.Errorf("%s: base differs from the defaults (every image shares one base):\n%s", name, d)
		}
		if r.Ready.Timeout <= 0 {
			t.Errorf("%s: ready timeout %v", name, r.Ready.Timeout)
		}
	}
	// The recipes' ready conditions match what their apps print.
	py, _ := Load("python")
	if !py.Ready.MatchLine("ready: listening on 0.0.0.0:8000") || py.Ready.MatchLine("INFO bench: catalogue has 10 items") {
		t.Errorf("python ready line %q", py.Ready.Line)
	}
	sh, _ := Load("shell")
	if !sh.Ready.MatchLine("ready") || sh.Ready.MatchLine("already") {
		t.Errorf("shell ready line %q", sh.Ready.Line)
	}
	node, _ := Load("node")
	if node.Ready.Port != 3000 || node.Ready.MatchLine("anything") {
		t.Errorf("node ready %+v", node.Ready)
	}
}

func TestLoadUnknown(t *testing.T) {
	for _, name := range []string{"nope", "../images", "Python", ""} {
		if _, err := Load(name); !errors.Is(err, ErrUnknownImage) {
			t.Errorf("Load(%q) = %v, want ErrUnknownImage", name, err)
		}
	}
	_, err := Load("nope")
	if err == nil || !strings.Contains(err.Error(), "python") {
		t.Errorf("error does not list the known images: %v", err)
	}
}

const okRecipe = `{
  "steps": [{"run": "true"}, {"copy": "app", "to": "/app"}],
  "config": {"entrypoint": ["/app/run"]},
  "ready": {"line": "^up$"}
}`

func recipeFS(recipe string) fstest.MapFS {
	return fstest.MapFS{
		"x/recipe.json": {Data: []byte(recipe)},
		"x/app/run":     {Data: []byte("#!/bin/sh\necho up\n")},
		"x/file.txt":    {Data: []byte("hello")},
	}
}

func TestLoadValid(t *testing.T) {
	r, err := loadRecipe(recipeFS(okRecipe), "x")
	if err != nil {
		t.Fatal(err)
	}
	if r.Ready.Timeout != DefaultReadyTimeout {
		t.Errorf("timeout %v, want the default", r.Ready.Timeout)
	}
	if r.Base.Mirror != DefaultMirror || r.Base.Suite != "bookworm" || r.Base.Variant != "minbase" {
		t.Errorf("base defaults: %+v", r.Base)
	}
}

func TestLoadInvalid(t *testing.T) {
	for _, tc := range []struct{ name, recipe, want string }{
		{"not json", `{`, "unexpected EOF"},
		{"unknown field", `{"stepz": []}`, `unknown field "stepz"`},
		{"no steps", `{"config": {"entrypoint": ["a"]}, "ready": {"line": "x"}}`, "no steps"},
		{"run and copy", strings.Replace(okRecipe, `{"run": "true"}`, `{"run": "true", "copy": "app", "to": "/a"}`, 1), "both run and copy"},
		{"empty step", strings.Replace(okRecipe, `{"run": "true"}`, `{}`, 1), "neither run nor copy"},
		{"run with to", strings.Replace(okRecipe, `{"run": "true"}`, `{"run": "true", "to": "/a"}`, 1), "belong to copy steps"},
		{"relative to", strings.Replace(okRecipe, `"to": "/app"`, `"to": "app"`, 1), "not absolute"},
		{"reserved to", strings.Replace(okRecipe, `"to": "/app"`, `"to": "/mnt/app"`, 1), "reserved"},
		{"root to", strings.Replace(okRecipe, `"to": "/app"`, `"to": "/"`, 1), "reserved"},
		{"missing source", strings.Replace(okRecipe, `"copy": "app"`, `"copy": "nope"`, 1), "copy nope"},
		{"escaping source", strings.Replace(okRecipe, `"copy": "app"`, `"copy": "../y"`, 1), "not a path inside"},
		{"recipe as source", strings.Replace(okRecipe, `"copy": "app"`, `"copy": "recipe.json"`, 1), "not a path inside"},
		{"unknown stage", strings.Replace(okRecipe, `"copy": "app"`, `"copy": "/a", "from": "jdk"`, 1), `no stage "jdk"`},
		{"bad mode", strings.Replace(okRecipe, `"to": "/app"`, `"to": "/app", "mode": "0999"`, 1), "octal"},
		{"bad chown", strings.Replace(okRecipe, `"to": "/app"`, `"to": "/app", "chown": "a b"`, 1), "USER[:GROUP]"},
		{"no entrypoint", strings.Replace(okRecipe, `"entrypoint": ["/app/run"]`, `"cmd": ["x"]`, 1), "no entrypoint"},
		{"bad env", strings.Replace(okRecipe, `"entrypoint": ["/app/run"]`, `"entrypoint": ["/app/run"], "env": ["NOEQUALS"]`, 1), "KEY=VALUE"},
		{"relative workdir", strings.Replace(okRecipe, `"entrypoint": ["/app/run"]`, `"entrypoint": ["/app/run"], "workingDir": "app"`, 1), "workingDir"},
		{"bad port", strings.Replace(okRecipe, `"entrypoint": ["/app/run"]`, `"entrypoint": ["/app/run"], "exposedPorts": ["80"]`, 1), "exposed port"},
		{"no ready", strings.Replace(okRecipe, `{"line": "^up$"}`, `{}`, 1), "no condition"},
		{"line and port", strings.Replace(okRecipe, `{"line": "^up$"}`, `{"line": "x", "port": 80}`, 1), "not both"},
		{"bad regexp", strings.Replace(okRecipe, `{"line": "^up$"}`, `{"line": "("}`, 1), "missing closing )"},
		{"port range", strings.Replace(okRecipe, `{"line": "^up$"}`, `{"port": 70000}`, 1), "out of range"},
		{"bad timeout", strings.Replace(okRecipe, `{"line": "^up$"}`, `{"line": "x", "timeout": "soon"}`, 1), "ready timeout"},
		{"bad mirror", strings.Replace(okRecipe, `"steps"`, `"base": {"mirror": "ftp://x"}, "steps"`, 1), "not an http(s) URL"},
		{"bad package", strings.Replace(okRecipe, `"steps"`, `"base": {"include": ["a b"]}, "steps"`, 1), "not a Debian package"},
		{"stage copies from stage", strings.Replace(okRecipe, `"steps"`, `"stages": {"s": {"steps": [{"copy": "/a", "from": "s", "to": "/b"}]}}, "steps"`, 1), "only allowed in the image's steps"},
		{"empty stage", strings.Replace(okRecipe, `"steps"`, `"stages": {"s": {"steps": []}}, "steps"`, 1), "has no steps"},
		{"valid stage", strings.Replace(okRecipe, `"steps"`, `"stages": {"s": {"steps": [{"run": "true"}]}}, "steps"`, 1), ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := loadRecipe(recipeFS(tc.recipe), "x")
			if tc.want == "" {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if !errors.Is(err, ErrInvalidRecipe) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want ErrInvalidRecipe mentioning %q", err, tc.want)
			}
			if !strings.Contains(err.Error(), "x/recipe.json") {
				t.Errorf("error does not name the file: %v", err)
			}
		})
	}
	// A copy from a stage must name an absolute path and takes no mode.
	withStage := strings.Replace(okRecipe, `"steps"`, `"stages": {"s": {"steps": [{"run": "true"}]}}, "steps"`, 1)
	for src, want := range map[string]string{
		`"copy": "a.jar", "from": "s"`:                  "must be absolute",
		`"copy": "/a.jar", "from": "s", "mode": "0755"`: "mode applies to files from the image directory",
	} {
		_, err := loadRecipe(recipeFS(strings.Replace(withStage, `"copy": "app"`, src, 1)), "x")
		if !errors.Is(err, ErrInvalidRecipe) || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: got %v, want %q", src, err, want)
		}
	}
}

func TestKeyFollowsContent(t *testing.T) {
	key := func(fsys fstest.MapFS) string {
		t.Helper()
		r, err := loadRecipe(fsys, "x")
		if err != nil {
			t.Fatal(err)
		}
		return r.Key
	}
	base := key(recipeFS(okRecipe))
	if k := key(recipeFS(okRecipe)); k != base {
		t.Errorf("same content, key %s then %s", base, k)
	}
	changed := recipeFS(okRecipe)
	changed["x/app/run"] = &fstest.MapFile{Data: []byte("#!/bin/sh\necho up!\n")}
	if key(changed) == base {
		t.Error("changing a copied file kept the key")
	}
	added := recipeFS(okRecipe)
	added["x/app/extra"] = &fstest.MapFile{Data: nil}
	if key(added) == base {
		t.Error("adding a file kept the key")
	}
	renamed := recipeFS(okRecipe)
	delete(renamed, "x/file.txt")
	renamed["x/file2.txt"] = &fstest.MapFile{Data: []byte("hello")}
	if key(renamed) == base {
		t.Error("renaming a file kept the key")
	}
	other := recipeFS(okRecipe)
	other["y/recipe.json"] = &fstest.MapFile{Data: []byte("{}")}
	if key(other) != base {
		t.Error("another recipe's files changed this one's key")
	}
}

func TestReadyJSON(t *testing.T) {
	var r Ready
	if err := json.Unmarshal([]byte(`{"port": 8080, "timeout": "90s"}`), &r); err != nil {
		t.Fatal(err)
	}
	if r.Port != 8080 || r.Timeout != 90*time.Second {
		t.Errorf("got %+v", r)
	}
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != `{"port":8080,"timeout":"1m30s"}` {
		t.Errorf("marshal: %s", b)
	}
	if err := json.Unmarshal([]byte(`{"lines": "x"}`), &r); err == nil {
		t.Error("unknown field accepted")
	}
	// MatchLine compiles on demand for a Ready built in code.
	if !(&Ready{Line: "^ok"}).MatchLine("ok go") || (&Ready{Line: "("}).MatchLine("(") || (&Ready{Port: 1}).MatchLine("") {
		t.Error("MatchLine")
	}
}

func TestCreatedBy(t *testing.T) {
	for _, tc := range []struct {
		s    Step
		want string
	}{
		{Step{Run: "apt-get update"}, "RUN /bin/sh -c apt-get update"},
		{Step{Copy: "app", To: "/app"}, "COPY app /app"},
		{Step{Copy: "bin", To: "/app/bin", Mode: "0755", Chown: "app"}, "COPY --chown=app --chmod=0755 bin /app/bin"},
		{Step{Copy: "/src/app.jar", From: "jdk", To: "/app/"}, "COPY --from=jdk /src/app.jar /app/"},
	} {
		if got := createdBy(tc.s); got != tc.want {
			t.Errorf("createdBy(%+v) = %q, want %q", tc.s, got, tc.want)
		}
	}
}

func TestMergeEnv(t *testing.T) {
	got := mergeEnv([]string{"PATH=/bin", "HOME=/root"}, []string{"HOME=/app", "PORT=1", "PATH=/opt/bin:/bin"})
	want := []string{"PATH=/opt/bin:/bin", "HOME=/app", "PORT=1"}
	if d := cmp.Diff(want, got); d != "" {
		t.Error(d)
	}
	env := stepEnv([]string{"PYTHONUNBUFFERED=1"})
	for _, e := range []string{"DEBIAN_FRONTEND=noninteractive", "HOME=/root", "PYTHONUNBUFFERED=1", defaultEnv[0]} {
		if !slices.Contains(env, e) {
			t.Errorf("step env %v lacks %s", env, e)
		}
	}
}
