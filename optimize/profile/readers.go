package profile

import (
	"path"
	"strings"
)

// readerAnalyzer follows the common utilities that read the files named on
// their command line (cat, cp, head, ...): a script that copies or prints
// files at start reads them. Options are skipped, a directory copied with
// -r, -R or -a is read down to maxCopyDepth levels, and cp's last operand
// (the destination, unless -t names it) is not read.
type readerAnalyzer struct {
	c *core
}

// maxCopyDepth bounds the levels of a directory that cp -r is followed into.
const maxCopyDepth = 8

// fileReaders are the programs whose operands are files they read.
var fileReaders = map[string]bool{
	"cat": true, "cp": true, "head": true, "tail": true, "tac": true, "wc": true, "sort": true,
	"md5sum": true, "sha1sum": true, "sha256sum": true, "sha512sum": true, "base64": true,
}

// readerOptArg are the options of fileReaders that take the next argument
// as their value, by program.
var readerOptArg = map[string]map[string]bool{
	"cp":     {"-t": true, "-S": true, "--target-directory": true, "--suffix": true},
	"head":   {"-n": true, "-c": true, "--lines": true, "--bytes": true},
	"tail":   {"-n": true, "-c": true, "-s": true, "--lines": true, "--bytes": true, "--pid": true},
	"sort":   {"-k": true, "-t": true, "-o": true, "-S": true, "-T": true, "--key": true, "--field-separator": true, "--output": true},
	"base64": {"-w": true, "--wrap": true},
}

func (ra *readerAnalyzer) finish() {}

func (ra *readerAnalyzer) start(x *execution) {
	name := path.Base(x.argv[0])
	var ops []string
	recursive, target := false, false
	opts := true
	for i := 1; i < len(x.argv); i++ {
		a := x.argv[i]
		switch {
		case !opts || a == "-" || !strings.HasPrefix(a, "-"):
			ops = append(ops, a)
		case a == "--":
			opts = false
		case readerOptArg[name][a]:
			target = target || a == "-t" || a == "--target-directory"
			i++
		case strings.HasPrefix(a, "--"):
			recursive = recursive || a == "--recursive" || a == "--archive"
			target = target || strings.HasPrefix(a, "--target-directory=")
		default:
			// Short options, possibly grouped (-fR).
			recursive = recursive || strings.ContainsAny(a[1:], "rRa")
			if name == "cp" && strings.HasSuffix(a, "t") {
				target = true
				i++
			}
		}
	}
	if name == "cp" && !target && len(ops) > 0 {
		ops = ops[:len(ops)-1]
	}
	for _, op := range ops {
		if op == "-" {
			continue
		}
		f := cleanAbs(x.cwd, op)
		if name == "cp" && recursive {
			if _, ok := ra.c.isDir(f); ok {
				ra.c.useTree(f, maxCopyDepth)
				continue
			}
		}
		ra.c.use(f)
	}
}
