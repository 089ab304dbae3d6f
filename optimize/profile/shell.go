package profile

import (
	"strconv"
	"strings"
)

// maxShellCommands bounds the commands followed in one script, and
// maxShellTotal those of the whole profile.
const (
	maxShellCommands = 1000
	maxShellTotal    = 20000
)

// shellAnalyzer follows shells (sh, bash, dash, ash, busybox sh, ...): the
// script or "-c" text they run, read by a small tokenizer, and every
// command in it, which it hands back to the core. Its own state is the
// count of commands followed in the whole profile.
type shellAnalyzer struct {
	c        *core
	commands int // shell commands followed in the whole profile
}

func (sh *shellAnalyzer) start(x *execution) { sh.runArgs(x.argv, x.env, x.cwd, x.fr) }

func (sh *shellAnalyzer) finish() {}

// runArgs follows a shell started as "sh [options] script [args]" or
// "sh [options] -c 'commands' [$0 [args]]".
func (sh *shellAnalyzer) runArgs(argv []string, env map[string]string, cwd string, fr frame) {
	args := argv[1:]
	cmdMode := false
	for len(args) > 0 {
		a := args[0]
		if a == "--" || a == "-" {
			args = args[1:]
			break
		}
		if len(a) < 2 || (a[0] != '-' && a[0] != '+') {
			break
		}
		args = args[1:]
		switch {
		case a == "-o" || a == "+o" || a == "--rcfile" || a == "--init-file":
			if len(args) > 0 {
				args = args[1:]
			}
		case strings.HasPrefix(a, "--"):
		case strings.ContainsRune(a[1:], 'c') && a[0] == '-':
			cmdMode = true
		}
	}
	if len(args) == 0 {
		return // an interactive shell or a script read from stdin
	}
	if cmdMode {
		pos := []string{}
		if len(args) > 2 {
			pos = args[2:]
		}
		sh.script([]byte(args[0]), "sh -c", pos, copyEnv(env), cwd, fr)
		return
	}
	script := args[0]
	file := cleanAbs(cwd, script)
	if _, ok := sh.c.resolveFile(file); !ok && !strings.Contains(script, "/") {
		// bash looks a script name up in PATH when it is not in cwd.
		if p, ok := sh.c.lookPath(script, env["PATH"], cwd); ok {
			file = p
		}
	}
	r, ok := sh.c.use(file)
	if !ok {
		sh.c.warnf("%s: shell script %s not found in the image", argv[0], script)
		return
	}
	src, ok := sh.c.readText(r.Real)
	if !ok {
		return
	}
	sh.script(src, r.Real, args[1:], copyEnv(env), cwd, fr)
}

// shellState is the little a shell script's static reading keeps track of.
type shellState struct {
	name  string
	vars  map[string]string
	pos   []string
	cwd   string
	funcs map[string]bool
	fr    frame
	count int
	// subDepth counts the command substitutions being followed.
	subDepth int
}

// script reads the shell script src and follows every simple command it
// can name statically, in text order: programs by absolute path or PATH,
// scripts sourced with "." or "source", and "exec" targets. Words that need
// command substitution are skipped; $VAR, ${VAR:-default}, $1 and "$@" are
// expanded from the environment, earlier assignments and the arguments.
func (sh *shellAnalyzer) script(src []byte, name string, args []string, vars map[string]string, cwd string, fr frame) {
	st := &shellState{name: name, vars: vars, pos: args, cwd: cwd, funcs: map[string]bool{}, fr: fr}
	sh.tokens(st, lexShell(src))
}

func (sh *shellAnalyzer) tokens(st *shellState, toks []shTok) {
	// Functions may be called before the text that defines them.
	for i, t := range toks {
		if t.isWord() {
			if i+2 < len(toks) && toks[i+1].op == "(" && toks[i+2].op == ")" {
				st.funcs[t.literal()] = true
			}
			if t.literal() == "function" && i+1 < len(toks) && toks[i+1].isWord() {
				st.funcs[toks[i+1].literal()] = true
			}
		}
	}
	expect := true   // the next word starts a simple command
	pattern := false // inside a case, before the ")" of a pattern
	caseDepth := 0
	for i := 0; i < len(toks) && !sh.c.stopped(); i++ {
		t := toks[i]
		if !t.isWord() {
			switch t.op {
			case ";;", ";&", ";;&":
				if caseDepth > 0 {
					pattern = true
				}
				expect = true
			case ")":
				if pattern {
					pattern = false
				}
				expect = true
			case "(":
				if i+1 < len(toks) && toks[i+1].op == "(" { // (( arithmetic ))
					i = skipArith(toks, i+2)
					expect = false
					continue
				}
				expect = true
			case "\n", ";", "&", "&&", "||", "|", "|&":
				expect = true
			default:
				if isRedirect(t.op) && i+1 < len(toks) && toks[i+1].isWord() {
					i++ // the redirection target
				}
			}
			continue
		}
		lit := t.literal()
		if pattern {
			if lit == "esac" {
				caseDepth--
				pattern = false
				expect = false
			}
			continue
		}
		if !expect {
			continue
		}
		if t.plain() {
			switch lit {
			case "if", "then", "else", "elif", "do", "while", "until", "!", "{", "time":
				continue
			case "fi", "done", "}":
				expect = false
				continue
			case "esac":
				if caseDepth > 0 {
					caseDepth--
				}
				expect = false
				continue
			case "for", "select":
				i = skipToSep(toks, i+1)
				expect = true
				continue
			case "case":
				for i+1 < len(toks) && !(toks[i+1].isWord() && toks[i+1].literal() == "in") {
					i++
				}
				i++
				caseDepth++
				pattern = true
				continue
			case "[[":
				for i+1 < len(toks) && !(toks[i+1].isWord() && toks[i+1].literal() == "]]") {
					i++
				}
				i++
				expect = false
				continue
			case "function":
				if i+1 < len(toks) && toks[i+1].isWord() {
					i++
				}
				if i+2 < len(toks) && toks[i+1].op == "(" && toks[i+2].op == ")" {
					i += 2
				}
				continue
			}
		}
		if i+2 < len(toks) && toks[i+1].op == "(" && toks[i+2].op == ")" {
			i += 2 // a function definition; its body follows
			continue
		}
		if name, value, ok := t.assignment(); ok {
			if v, ok := st.expandOne(value); ok {
				st.vars[name] = v
			}
			continue
		}
		// A simple command: its words up to the next separator.
		var words []shTok
		j := i
		for ; j < len(toks); j++ {
			tj := toks[j]
			if !tj.isWord() {
				if isRedirect(tj.op) {
					if j+1 < len(toks) && toks[j+1].isWord() {
						j++
					}
					continue
				}
				break
			}
			words = append(words, tj)
		}
		i = j - 1
		expect = false
		// Command substitutions in the words run first.
		if st.subDepth < maxSubstitutionDepth {
			for _, wd := range words {
				for _, p := range wd.parts {
					if p.sub != "" {
						st.subDepth++
						sh.tokens(st, lexShell([]byte(p.sub)))
						st.subDepth--
					}
				}
			}
		}
		argv, ok := st.expand(words, func(pattern string) []string { return sh.glob(cleanAbs(st.cwd, pattern)) })
		if !ok || len(argv) == 0 {
			continue
		}
		sh.command(st, argv)
	}
}

// skipToSep returns the index of the last token before the next ";" or
// newline.
func skipToSep(toks []shTok, i int) int {
	for i < len(toks) && toks[i].op != ";" && toks[i].op != "\n" {
		i++
	}
	return i - 1
}

// skipArith skips to the end of "(( ... ))".
func skipArith(toks []shTok, i int) int {
	depth := 2
	for ; i < len(toks); i++ {
		switch toks[i].op {
		case "(":
			depth++
		case ")":
			depth--
			if depth == 0 {
				return i
			}
		}
	}
	return i
}

// shellBuiltins never start a program.
var shellBuiltins = map[string]bool{
	":": true, "true": true, "false": true, "echo": true, "printf": true, "test": true, "[": true,
	"read": true, "exit": true, "return": true, "break": true, "continue": true, "trap": true,
	"wait": true, "umask": true, "ulimit": true, "getopts": true, "let": true, "alias": true,
	"unalias": true, "type": true, "hash": true, "pwd": true, "kill": true, "jobs": true,
	"fg": true, "bg": true, "times": true, "shopt": true, "eval": true, "builtin": true,
	"caller": true, "compgen": true, "complete": true, "dirs": true, "disown": true,
	"enable": true, "help": true, "history": true, "logout": true, "mapfile": true,
	"popd": true, "pushd": true, "readarray": true, "suspend": true, "newgrp": true,
}

// command follows one expanded simple command.
func (sh *shellAnalyzer) command(st *shellState, argv []string) {
	st.count++
	sh.commands++
	if st.count > maxShellCommands {
		if st.count == maxShellCommands+1 {
			sh.c.warnf("%s: only the first %d commands were followed", st.name, maxShellCommands)
		}
		return
	}
	if sh.commands > maxShellTotal {
		sh.c.warnf("only the first %d shell commands of the profile were followed", maxShellTotal)
		return
	}
	cmd := argv[0]
	switch cmd {
	case "exec":
		rest := argv[1:]
		for len(rest) > 0 && strings.HasPrefix(rest[0], "-") {
			if rest[0] == "-a" && len(rest) > 1 {
				rest = rest[1:]
			}
			if rest[0] == "--" {
				rest = rest[1:]
				break
			}
			rest = rest[1:]
		}
		if len(rest) > 0 {
			sh.command(st, rest)
		}
		return
	case "command":
		rest := argv[1:]
		for len(rest) > 0 && strings.HasPrefix(rest[0], "-") {
			if rest[0] == "-v" || rest[0] == "-V" {
				return // only asks where a command is
			}
			rest = rest[1:]
		}
		if len(rest) > 0 {
			sh.command(st, rest)
		}
		return
	case ".", "source":
		if len(argv) < 2 {
			return
		}
		file := cleanAbs(st.cwd, argv[1])
		if !strings.Contains(argv[1], "/") {
			if p, ok := sh.findSourced(argv[1], st); ok {
				file = p
			}
		}
		if st.fr.depth+1 > sh.c.o.maxDepth {
			sh.c.warnf("%s: sourced scripts nested deeper than %d levels are not followed", file, sh.c.o.maxDepth)
			return
		}
		r, ok := sh.c.use(file)
		if !ok {
			sh.c.warnf("%s: sourced file %s not found in the image", st.name, argv[1])
			return
		}
		src, ok := sh.c.readText(r.Real)
		if !ok {
			return
		}
		sub := &shellState{name: r.Real, vars: st.vars, pos: st.pos, cwd: st.cwd, funcs: st.funcs,
			fr: frame{depth: st.fr.depth + 1}}
		if len(argv) > 2 {
			sub.pos = argv[2:]
		}
		sh.tokens(sub, lexShell(src))
		st.cwd = sub.cwd
		return
	case "set":
		for k, a := range argv[1:] {
			if a == "--" {
				st.pos = append([]string{}, argv[k+2:]...)
				break
			}
		}
		return
	case "shift":
		n := 1
		if len(argv) > 1 {
			if v, err := strconv.Atoi(argv[1]); err == nil {
				n = v
			}
		}
		if n >= 0 && n <= len(st.pos) {
			st.pos = st.pos[n:]
		}
		return
	case "cd":
		if len(argv) > 1 && argv[1] != "-" {
			dir := cleanAbs(st.cwd, argv[1])
			if _, ok := sh.c.isDir(dir); ok {
				st.cwd = dir
			}
		} else if len(argv) == 1 {
			st.cwd = cleanAbs("/", st.vars["HOME"])
		}
		return
	case "export", "readonly", "local", "declare", "typeset":
		for _, a := range argv[1:] {
			if k, v, ok := strings.Cut(a, "="); ok && validName(k) {
				st.vars[k] = v
			}
		}
		return
	case "unset":
		for _, a := range argv[1:] {
			delete(st.vars, a)
		}
		return
	}
	if shellBuiltins[cmd] || st.funcs[cmd] {
		return
	}
	sh.c.run(argv, copyEnv(st.vars), st.cwd, frame{depth: st.fr.depth + 1, shell: true})
}

// findSourced finds the file of ". name": PATH first, then the working
// directory, as bash does.
func (sh *shellAnalyzer) findSourced(name string, st *shellState) (string, bool) {
	for _, dir := range strings.Split(st.vars["PATH"], ":") {
		if dir == "" {
			dir = "."
		}
		p := cleanAbs(cleanAbs(st.cwd, dir), name)
		if _, ok := sh.c.resolveFile(p); ok {
			return p, true
		}
	}
	p := cleanAbs(st.cwd, name)
	_, ok := sh.c.resolveFile(p)
	return p, ok
}

func validName(s string) bool {
	if s == "" {
		return false
	}
	for i, c := range s {
		if c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (i > 0 && c >= '0' && c <= '9') {
			continue
		}
		return false
	}
	return true
}

// shPart is one piece of a shell word.
type shPart struct {
	lit    string // literal text
	param  string // parameter name of an expansion ("1", "@", "HOME")
	def    string // ${param:-def}
	hasDef bool
	dyn    bool // cannot be known statically (command substitution, ...)
	quoted bool // inside quotes
	// sub is the text of a command substitution, $(...) or `...`: its
	// commands run before the command whose word holds it.
	sub string
}

// subBody returns src[start:end] when it is a sane range, else "".
func subBody(src []byte, start, end int) string {
	if start < 0 || end > len(src) || start >= end {
		return ""
	}
	return string(src[start:end])
}

// maxSubstitutionDepth bounds command substitutions within substitutions.
const maxSubstitutionDepth = 4

// shTok is a shell token: an operator or a word.
type shTok struct {
	op    string
	parts []shPart
}

func (t shTok) isWord() bool { return t.op == "" }

// literal is the word's text with expansions left out.
func (t shTok) literal() string {
	var b strings.Builder
	for _, p := range t.parts {
		b.WriteString(p.lit)
	}
	return b.String()
}

// plain reports an unquoted word without expansions: only those can be
// reserved words.
func (t shTok) plain() bool {
	for _, p := range t.parts {
		if p.quoted || p.param != "" || p.dyn {
			return false
		}
	}
	return true
}

// assignment reports NAME=value and returns NAME and the parts of the value.
func (t shTok) assignment() (string, []shPart, bool) {
	if len(t.parts) == 0 {
		return "", nil, false
	}
	p := t.parts[0]
	if p.quoted || p.param != "" || p.dyn {
		return "", nil, false
	}
	name, rest, ok := strings.Cut(p.lit, "=")
	if !ok || !validName(name) {
		return "", nil, false
	}
	value := append([]shPart{}, t.parts[1:]...)
	if rest != "" {
		value = append([]shPart{{lit: rest}}, value...)
	}
	return name, value, true
}

// expandOne expands parts into one string; ok is false when some part is
// dynamic.
func (st *shellState) expandOne(parts []shPart) (string, bool) {
	var b strings.Builder
	for _, p := range parts {
		switch {
		case p.dyn:
			return "", false
		case p.param != "":
			v, ok := st.param(p)
			if !ok {
				return "", false
			}
			b.WriteString(strings.Join(v, " "))
		default:
			b.WriteString(p.lit)
		}
	}
	return b.String(), true
}

// param expands one parameter to its fields.
func (st *shellState) param(p shPart) ([]string, bool) {
	switch p.param {
	case "@", "*":
		return st.pos, true
	case "#":
		return []string{strconv.Itoa(len(st.pos))}, true
	case "0":
		return []string{st.name}, true
	case "?", "$", "!", "-":
		return nil, false
	}
	if n, err := strconv.Atoi(p.param); err == nil {
		if n >= 1 && n <= len(st.pos) {
			return []string{st.pos[n-1]}, true
		}
		if p.hasDef {
			return []string{p.def}, true
		}
		return []string{""}, true
	}
	v, ok := st.vars[p.param]
	if (!ok || v == "") && p.hasDef {
		return []string{p.def}, true
	}
	return []string{v}, true
}

// expand turns words into argv. "$@" alone becomes one field per argument;
// an unquoted expansion splits on blanks; a word with a dynamic part makes
// the whole command unknowable when it is the command name, and is dropped
// otherwise.
func (st *shellState) expand(words []shTok, glob func(pattern string) []string) ([]string, bool) {
	var argv []string
	for k, wd := range words {
		if len(wd.parts) == 1 && (wd.parts[0].param == "@" || (wd.parts[0].param == "*" && !wd.parts[0].quoted)) {
			argv = append(argv, st.pos...)
			continue
		}
		var b, pat strings.Builder
		dyn := false
		split := false
		wild := false
		for _, p := range wd.parts {
			switch {
			case p.dyn:
				dyn = true
			case p.param != "":
				v, ok := st.param(p)
				if !ok {
					dyn = true
					continue
				}
				b.WriteString(strings.Join(v, " "))
				if !p.quoted {
					split = true
				}
			default:
				b.WriteString(p.lit)
				if !p.quoted && hasMeta(p.lit) {
					wild = true
					pat.WriteString(p.lit)
				} else {
					pat.WriteString(escapeMeta(p.lit))
				}
			}
		}
		if dyn {
			if k == 0 || len(argv) == 0 {
				return nil, false
			}
			continue
		}
		switch {
		case split:
			argv = append(argv, strings.Fields(b.String())...)
		case wild && k > 0 && glob != nil:
			// Pathname expansion; a pattern that matches nothing stays.
			if m := glob(pat.String()); len(m) > 0 {
				argv = append(argv, m...)
			} else {
				argv = append(argv, b.String())
			}
		default:
			argv = append(argv, b.String())
		}
	}
	return argv, true
}

// glob expands an absolute pattern as sh does: like core.glob, except that
// directories match too (cp -r copies them) and a name starting with a dot
// matches only a pattern element that does.
func (sh *shellAnalyzer) glob(pattern string) []string {
	pe := strings.Split(pattern, "/")
	var out []string
	for _, m := range sh.c.globMatch(pattern, true) {
		me := strings.Split(m, "/")
		hidden := false
		for i := 0; i < len(pe) && i < len(me); i++ {
			if hasMeta(pe[i]) && !strings.HasPrefix(pe[i], ".") && strings.HasPrefix(me[i], ".") {
				hidden = true
			}
		}
		if !hidden {
			out = append(out, m)
		}
	}
	return out
}

// escapeMeta quotes the glob wildcards of s for path.Match.
func escapeMeta(s string) string {
	if !strings.ContainsAny(s, "*?[\\") {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		if strings.ContainsRune("*?[\\", r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}

func isRedirect(op string) bool {
	switch op {
	case "<", ">", ">>", "<<", "<<-", "<<<", "<&", ">&", "<>", ">|", "&>", "&>>":
		return true
	}
	return false
}

// lexShell splits a POSIX shell script into words and operators. It knows
// quotes, backslashes, comments, line continuations, here-documents (whose
// bodies are skipped), and parameter expansions; command substitutions and
// arithmetic are kept as opaque dynamic parts.
func lexShell(src []byte) []shTok {
	l := &shLexer{src: src}
	l.run()
	return l.toks
}

type shLexer struct {
	src     []byte
	i       int
	toks    []shTok
	cur     []shPart
	inWord  bool
	heredoc []heredoc
}

type heredoc struct {
	delim string
	strip bool
}

func (l *shLexer) emitWord() {
	if l.inWord {
		l.toks = append(l.toks, shTok{parts: l.cur})
	}
	l.cur = nil
	l.inWord = false
}

func (l *shLexer) emitOp(op string) {
	l.emitWord()
	l.toks = append(l.toks, shTok{op: op})
}

func (l *shLexer) lit(s string, quoted bool) {
	l.inWord = true
	if n := len(l.cur); n > 0 {
		if last := &l.cur[n-1]; last.quoted == quoted && last.param == "" && !last.dyn {
			last.lit += s
			return
		}
	}
	l.cur = append(l.cur, shPart{lit: s, quoted: quoted})
}

func (l *shLexer) peek(k int) byte {
	if l.i+k < len(l.src) {
		return l.src[l.i+k]
	}
	return 0
}

func (l *shLexer) run() {
	ops := []string{"&>>", ";;&", "<<-", "<<<", "&&", "||", ";;", ";&", "|&", ">>", "<<", "<&", ">&", "<>", ">|", "&>", "&", "|", ";", "(", ")", "<", ">"}
	for l.i < len(l.src) {
		c := l.src[l.i]
		switch {
		case c == '\\' && l.peek(1) == '\n':
			l.i += 2
		case c == '\\':
			if l.i+1 < len(l.src) {
				l.lit(string(l.src[l.i+1]), true)
			}
			l.i += 2
		case c == ' ' || c == '\t' || c == '\r':
			l.emitWord()
			l.i++
		case c == '\n':
			l.emitOp("\n")
			l.i++
			l.skipHeredocs()
		case c == '#' && !l.inWord:
			for l.i < len(l.src) && l.src[l.i] != '\n' {
				l.i++
			}
		case c == '\'':
			end := indexFrom(l.src, l.i+1, '\'')
			l.lit(string(l.src[l.i+1:end]), true)
			l.i = end + 1
		case c == '"':
			l.i++
			l.inWord = true
			l.double()
		case c == '`':
			start := l.i + 1
			l.i = skipBacktick(l.src, l.i+1)
			l.inWord = true
			l.cur = append(l.cur, shPart{dyn: true, sub: subBody(l.src, start, l.i-1)})
		case c == '$':
			l.dollar(false)
		case strings.IndexByte(";&|()<>", c) >= 0:
			if (c == '<' || c == '>') && l.inWord && allDigits(l.cur) {
				l.cur = nil
				l.inWord = false
			}
			for _, op := range ops {
				if strings.HasPrefix(string(l.src[l.i:min(l.i+3, len(l.src))]), op) {
					l.emitOp(op)
					l.i += len(op)
					if op == "<<" || op == "<<-" {
						l.readHeredocDelim(op == "<<-")
					}
					break
				}
			}
		default:
			j := l.i + 1
			for j < len(l.src) && strings.IndexByte(" \t\r\n\\'\"`$;&|()<>#", l.src[j]) < 0 {
				j++
			}
			l.lit(string(l.src[l.i:j]), false)
			l.i = j
		}
	}
	l.emitWord()
}

func allDigits(parts []shPart) bool {
	if len(parts) != 1 || parts[0].quoted || parts[0].param != "" || parts[0].dyn || parts[0].lit == "" {
		return false
	}
	for _, c := range parts[0].lit {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// readHeredocDelim reads the word after "<<" and queues the here-document.
func (l *shLexer) readHeredocDelim(strip bool) {
	for l.i < len(l.src) && (l.src[l.i] == ' ' || l.src[l.i] == '\t') {
		l.i++
	}
	start := l.i
	for l.i < len(l.src) && strings.IndexByte(" \t\n;&|()<>", l.src[l.i]) < 0 {
		l.i++
	}
	d := strings.NewReplacer(`'`, "", `"`, "", `\`, "").Replace(string(l.src[start:l.i]))
	l.toks = append(l.toks, shTok{parts: []shPart{{lit: d}}})
	if d != "" {
		l.heredoc = append(l.heredoc, heredoc{delim: d, strip: strip})
	}
}

// skipHeredocs skips the bodies of the here-documents started on the line
// that just ended.
func (l *shLexer) skipHeredocs() {
	for _, h := range l.heredoc {
		for l.i < len(l.src) {
			end := indexFrom(l.src, l.i, '\n')
			line := string(l.src[l.i:end])
			l.i = end + 1
			if h.strip {
				line = strings.TrimLeft(line, "\t")
			}
			if strings.TrimRight(line, "\r") == h.delim {
				break
			}
		}
	}
	l.heredoc = nil
	if l.i > len(l.src) {
		l.i = len(l.src)
	}
}

// double reads a double-quoted string; l.i is after the opening quote.
func (l *shLexer) double() {
	var b strings.Builder
	flush := func() {
		if b.Len() > 0 {
			l.cur = append(l.cur, shPart{lit: b.String(), quoted: true})
			b.Reset()
		}
	}
	start := len(l.cur)
	for l.i < len(l.src) {
		c := l.src[l.i]
		switch c {
		case '"':
			flush()
			if len(l.cur) == start {
				l.cur = append(l.cur, shPart{quoted: true}) // "" is an empty word
			}
			l.i++
			return
		case '\\':
			n := l.peek(1)
			switch n {
			case '$', '`', '"', '\\':
				b.WriteByte(n)
				l.i += 2
			case '\n':
				l.i += 2
			default:
				b.WriteByte(c)
				l.i++
			}
		case '$':
			flush()
			l.dollar(true)
		case '`':
			flush()
			start := l.i + 1
			l.i = skipBacktick(l.src, l.i+1)
			l.cur = append(l.cur, shPart{dyn: true, quoted: true, sub: subBody(l.src, start, l.i-1)})
		default:
			b.WriteByte(c)
			l.i++
		}
	}
	flush()
}

// dollar reads an expansion at l.i ('$').
func (l *shLexer) dollar(quoted bool) {
	l.inWord = true
	n := l.peek(1)
	switch {
	case n == '(':
		start := l.i + 2
		l.i = skipParens(l.src, l.i+1)
		l.cur = append(l.cur, shPart{dyn: true, quoted: quoted, sub: subBody(l.src, start, l.i-1)})
	case n == '{':
		end := l.i + 2
		depth := 1
		for end < len(l.src) && depth > 0 {
			switch l.src[end] {
			case '{':
				depth++
			case '}':
				depth--
			}
			end++
		}
		body := string(l.src[l.i+2 : max(end-1, l.i+2)])
		l.i = end
		l.cur = append(l.cur, braceParam(body, quoted))
	case n == '@' || n == '*' || n == '#' || n == '?' || n == '$' || n == '!' || n == '-' || (n >= '0' && n <= '9'):
		l.cur = append(l.cur, shPart{param: string(n), quoted: quoted})
		l.i += 2
	case n == '_' || (n >= 'a' && n <= 'z') || (n >= 'A' && n <= 'Z'):
		end := l.i + 1
		for end < len(l.src) {
			c := l.src[end]
			if c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') {
				end++
				continue
			}
			break
		}
		l.cur = append(l.cur, shPart{param: string(l.src[l.i+1 : end]), quoted: quoted})
		l.i = end
	case n == '\'' && !quoted: // $'...' ANSI-C quoting: keep it literal
		end := indexFrom(l.src, l.i+2, '\'')
		l.cur = append(l.cur, shPart{lit: string(l.src[l.i+2 : end]), quoted: true})
		l.i = end + 1
	default:
		l.cur = append(l.cur, shPart{lit: "$", quoted: quoted})
		l.i++
	}
}

// braceParam parses the inside of ${...}: NAME, NAME:-word and NAME-word are
// known; every other operator is dynamic.
func braceParam(body string, quoted bool) shPart {
	if body == "" || body[0] == '#' || body[0] == '!' {
		return shPart{dyn: true, quoted: quoted}
	}
	name := body
	rest := ""
	for k, c := range body {
		if c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || (k == 0 && (c == '@' || c == '*')) {
			continue
		}
		name, rest = body[:k], body[k:]
		break
	}
	if name == "" {
		return shPart{dyn: true, quoted: quoted}
	}
	switch {
	case rest == "":
		return shPart{param: name, quoted: quoted}
	case strings.HasPrefix(rest, ":-") || strings.HasPrefix(rest, ":="):
		return shPart{param: name, def: unquoteSimple(rest[2:]), hasDef: true, quoted: quoted}
	case strings.HasPrefix(rest, "-") || strings.HasPrefix(rest, "="):
		return shPart{param: name, def: unquoteSimple(rest[1:]), hasDef: true, quoted: quoted}
	}
	return shPart{dyn: true, quoted: quoted}
}

func unquoteSimple(s string) string {
	if len(s) >= 2 && (s[0] == '"' || s[0] == '\'') && s[len(s)-1] == s[0] {
		return s[1 : len(s)-1]
	}
	return s
}

// indexFrom returns the index of c in b at or after i, or len(b).
func indexFrom(b []byte, i int, c byte) int {
	if i >= len(b) {
		return len(b)
	}
	if k := strings.IndexByte(string(b[i:]), c); k >= 0 {
		return i + k
	}
	return len(b)
}

// skipParens returns the index after the ")" matching the "(" at i.
func skipParens(b []byte, i int) int {
	depth := 0
	for ; i < len(b); i++ {
		switch b[i] {
		case '(':
			depth++
		case ')':
			depth--
			if depth == 0 {
				return i + 1
			}
		case '\'':
			i = indexFrom(b, i+1, '\'')
		case '\\':
			i++
		}
	}
	return len(b)
}

// skipBacktick returns the index after the closing backquote.
func skipBacktick(b []byte, i int) int {
	for ; i < len(b); i++ {
		switch b[i] {
		case '\\':
			i++
		case '`':
			return i + 1
		}
	}
	return len(b)
}
