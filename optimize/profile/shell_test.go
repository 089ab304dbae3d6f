package profile

import (
	"debug/elf"
	"strings"
	"testing"

	"github.com/coldstart-dev/coldstart/internal/elftest"
	"github.com/google/go-cmp/cmp"
)

// shellRoot has a static /bin/sh and static programs named in names, all
// in /usr/bin.
func shellRoot(names ...string) *memFS {
	m := newMemFS()
	m.mergedUsr()
	static := elftest.Build(elftest.Spec{Type: elf.ET_EXEC, Static: true})
	m.exe("/usr/bin/dash", static)
	m.link("/usr/bin/sh", "dash")
	for _, n := range names {
		m.exe("/usr/bin/"+n, static)
	}
	return m
}

func TestShellScript(t *testing.T) {
	m := shellRoot("grep", "sed", "server", "cat", "gosu", "migrate", "inner", "first", "second", "piped", "tool", "fromfn")
	m.exe("/opt/tools/tool", elftest.Build(elftest.Spec{Type: elf.ET_EXEC, Static: true}))
	m.text("/app/env.sh", "export APP_MODE=prod\nPATH=/opt/tools:$PATH\n")
	m.script("/app/entrypoint.sh", `#!/bin/sh
# a comment mentioning notacommand
set -eu
. /app/env.sh
echo "starting $APP_MODE" >&2
if [ "${1#-}" != "$1" ]; then
	set -- server "$@"
fi
cat <<EOF >/tmp/config
notacommand --in-heredoc
EOF
cat <<-'END'
	notacommand either
	END
case "$APP_MODE" in
	prod|staging) migrate --up ;;
	*) fallback ;;
esac
greet() {
	fromfn "hello"
}
greet
x=$(notacommand --substituted)
grep -q foo /etc/hosts && sed -n 1p /etc/hosts || true
first; second | piped &
tool --version
VAR=1 inner 2>/dev/null
for f in a b notacommand; do :; done
exec gosu app "$@"
`)
	p := mustStatic(t, m, Config{Entrypoint: []string{"/app/entrypoint.sh"}, Cmd: []string{"server", "--port", "80"}})
	want := []string{
		"/app/entrypoint.sh", "/bin", "/usr/bin/sh", "/usr/bin/dash", "/app/env.sh",
		"/usr/bin/cat", "/usr/bin/migrate", "/usr/bin/fromfn", "/usr/bin/grep", "/usr/bin/sed",
		"/usr/bin/first", "/usr/bin/second", "/usr/bin/piped", "/opt/tools/tool", "/usr/bin/inner",
		"/usr/bin/gosu", "/usr/bin/server",
	}
	if diff := cmp.Diff(want, p.Files); diff != "" {
		t.Errorf("files (-want +got):\n%s", diff)
	}
	for _, w := range p.Warnings {
		if strings.Contains(w, "notacommand") {
			t.Errorf("followed a word that is not a command: %s", w)
		}
	}
	// The "*) fallback" branch is a command of the script too: it is
	// reported missing.
	if !hasWarning(p, "fallback: command not found") {
		t.Errorf("warnings %q", p.Warnings)
	}
}

func TestShellDashC(t *testing.T) {
	m := shellRoot("python3", "server")
	m.dir("/srv")
	m.exe("/srv/run", elftest.Build(elftest.Spec{Type: elf.ET_EXEC, Static: true}))
	// Docker's shell form: CMD ["/bin/sh", "-c", "..."].
	p := mustStatic(t, m, Config{Cmd: []string{"/bin/sh", "-c", `cd /srv && exec ./run "$1"`, "sh", "arg"}})
	want := []string{"/bin", "/usr/bin/sh", "/usr/bin/dash", "/srv/run"}
	if diff := cmp.Diff(want, p.Files); diff != "" {
		t.Errorf("files (-want +got):\n%s", diff)
	}
	// sh -ec with the command in the next argument, and a script on PATH.
	m.script("/usr/local/bin/job.sh", "server\n")
	p = mustStatic(t, m, Config{Entrypoint: []string{"sh", "-ec", "job.sh"}})
	want = []string{"/usr/bin/sh", "/usr/bin/dash", "/usr/local/bin/job.sh", "/usr/bin/server"}
	if diff := cmp.Diff(want, p.Files); diff != "" {
		t.Errorf("files (-want +got):\n%s", diff)
	}
}

func TestShellPositional(t *testing.T) {
	m := shellRoot("postgres", "nginx")
	m.script("/docker-entrypoint.sh", "#!/bin/sh\nshift\nexec \"$@\"\n")
	p := mustStatic(t, m, Config{Entrypoint: []string{"/docker-entrypoint.sh"}, Cmd: []string{"ignored", "nginx", "-g", "daemon off;"}})
	want := []string{"/docker-entrypoint.sh", "/bin", "/usr/bin/sh", "/usr/bin/dash", "/usr/bin/nginx"}
	if diff := cmp.Diff(want, p.Files); diff != "" {
		t.Errorf("files (-want +got):\n%s", diff)
	}
	m.script("/e2.sh", "#!/bin/sh\nexec ${SERVER:-postgres} \"$@\"\n")
	p = mustStatic(t, m, Config{Entrypoint: []string{"/e2.sh"}})
	want = []string{"/e2.sh", "/bin", "/usr/bin/sh", "/usr/bin/dash", "/usr/bin/postgres"}
	if diff := cmp.Diff(want, p.Files); diff != "" {
		t.Errorf("files (-want +got):\n%s", diff)
	}
	p = mustStatic(t, m, Config{Entrypoint: []string{"/e2.sh"}, Env: []string{"SERVER=/usr/bin/nginx"}})
	if p.Files[len(p.Files)-1] != "/usr/bin/nginx" {
		t.Errorf("files %q", p.Files)
	}
}

func TestShellRecursionBounded(t *testing.T) {
	m := shellRoot()
	m.script("/a.sh", "#!/bin/sh\n/b.sh\n. /a.sh\n")
	m.script("/b.sh", "#!/bin/sh\n/a.sh\n")
	p := mustStatic(t, m, Config{Entrypoint: []string{"/a.sh"}}, WithMaxDepth(4))
	want := []string{"/a.sh", "/bin", "/usr/bin/sh", "/usr/bin/dash", "/b.sh"}
	if diff := cmp.Diff(want, p.Files); diff != "" {
		t.Errorf("files (-want +got):\n%s", diff)
	}
	if !hasWarning(p, "deeper than 4") {
		t.Errorf("warnings %q", p.Warnings)
	}
}

func TestLexShell(t *testing.T) {
	words := func(src string) []string {
		var out []string
		for _, tk := range lexShell([]byte(src)) {
			if tk.isWord() {
				out = append(out, tk.literal())
			} else {
				out = append(out, "<"+tk.op+">")
			}
		}
		return out
	}
	tests := []struct {
		src  string
		want []string
	}{
		{`a 'b c' "d e"f\ g`, []string{"a", "b c", "d ef g"}},
		{"a && b || c; d | e &", []string{"a", "<&&>", "b", "<||>", "c", "<;>", "d", "<|>", "e", "<&>"}},
		{"cmd 2>&1 >>log <in", []string{"cmd", "<>&>", "1", "<>>>", "log", "<<>", "in"}},
		{"a \\\n b # comment\nc", []string{"a", "b", "<\n>", "c"}},
		{"cat <<X\nbody\nX\nnext", []string{"cat", "<<<>", "X", "<\n>", "next"}},
		{`echo "$(date)" x`, []string{"echo", "", "x"}},
		{`x="" y`, []string{"x=", "y"}},
	}
	for _, tc := range tests {
		if diff := cmp.Diff(tc.want, words(tc.src)); diff != "" {
			t.Errorf("lexShell(%q) (-want +got):\n%s", tc.src, diff)
		}
	}
}

func TestShellExplosionBounded(t *testing.T) {
	m := shellRoot()
	// Every line runs the script again with new arguments, and sources a
	// file that sources itself: without memoisation and budgets this would
	// branch a thousandfold at every level.
	var src strings.Builder
	src.WriteString("#!/bin/sh\n")
	for i := 0; i < 300; i++ {
		src.WriteString("/s.sh \"x$1\"\n. /s.env\n")
	}
	m.script("/s.sh", src.String())
	m.text("/s.env", ". /s.env\n. /s.env\n")
	p := mustStatic(t, m, Config{Entrypoint: []string{"/s.sh"}})
	want := []string{"/s.sh", "/bin", "/usr/bin/sh", "/usr/bin/dash", "/s.env"}
	if diff := cmp.Diff(want, p.Files); diff != "" {
		t.Errorf("files (-want +got):\n%s", diff)
	}
	if !hasWarning(p, "shell commands of the profile") && !hasWarning(p, "deeper than") {
		t.Errorf("warnings %q", p.Warnings)
	}
}

// TestShellCommandSubstitution: the commands of $(...) and `...` in a
// command's words run before it, also inside functions.
func TestShellCommandSubstitution(t *testing.T) {
	m := shellRoot("date", "uname", "hostname", "ls", "wc")
	m.script("/app/start.sh", `#!/bin/sh
log() {
	printf '%s %s\n' "$(date -u +%s)" "$*"
}
log "kernel $(uname -sr) on `+"`hostname`"+`"
printf 'files: %s\n' "$(ls /app | wc -l)"
`)
	p := mustStatic(t, m, Config{Entrypoint: []string{"/app/start.sh"}})
	for _, want := range []string{"/usr/bin/date", "/usr/bin/uname", "/usr/bin/hostname", "/usr/bin/ls", "/usr/bin/wc"} {
		found := false
		for _, f := range p.Files {
			found = found || f == want
		}
		if !found {
			t.Errorf("%s not predicted: %v", want, p.Files)
		}
	}
}

// TestShellFileReaders checks the utilities that read the files their
// command line names, and pathname expansion: an unquoted pattern expands
// to the matching names in order, a quoted one and one that matches
// nothing stay as written; cp's destination is not read, cp -r reads a
// directory's tree, and the options that take a value skip it.
func TestShellFileReaders(t *testing.T) {
	m := shellRoot("cp", "cat", "head", "wc", "mkdir")
	for _, f := range []string{"/app/www/index.html", "/app/www/robots.txt", "/app/www/.hidden", "/app/lit*", "/app/tree/a", "/app/tree/sub/b",
		"/app/t1", "/app/t2", "/app/motd", "/app/w", "/app/dst", "/app/5",
		"/app/site/top.html", "/app/site/css/s.css", "/app/site/css/deep/x.css", "/app/flat/f", "/app/flat/sub/g"} {
		m.text(f, "x")
	}
	m.script("/app/start.sh", `#!/bin/sh
root=/tmp/www
mkdir -p "$root"
cp /app/www/* "$root/"
cat '/app/lit*' /app/nomatch*.txt
head -n 5 /app/motd
wc -c /app/w
cp -r /app/tree /tmp/tree
cp -t /app/dst /app/t1 /app/t2
cp -a /app/site/* /tmp/site/
cp /app/flat/* /tmp/flat/
`)
	p := mustStatic(t, m, Config{Entrypoint: []string{"/app/start.sh"}})
	want := []string{
		"/app/www/index.html", "/app/www/robots.txt",
		"/app/lit*",
		"/app/motd",
		"/app/w",
		"/app/tree/a", "/app/tree/sub/b",
		"/app/t1", "/app/t2",
		"/app/site/css/deep/x.css", "/app/site/css/s.css", "/app/site/top.html",
		"/app/flat/f",
	}
	var got []string
	for _, f := range p.Files {
		if strings.HasPrefix(f, "/app/") && f != "/app/start.sh" {
			got = append(got, f)
		}
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("files read (-want +got):\n%s\nall: %q", diff, p.Files)
	}
}
