package main

import (
	"io"
	"os"
	"strconv"

	"golang.org/x/term"
)

// defaultWidth is the width of text output that goes to no terminal and
// no $COLUMNS.
const defaultWidth = 80

// terminal reports whether w is a terminal, and its width when it is.
func terminal(w io.Writer) (bool, int) {
	f, ok := w.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return false, 0
	}
	width, _, err := term.GetSize(int(f.Fd()))
	if err != nil {
		return true, 0
	}
	return true, width
}

// width is how many columns text output may use: the terminal's when
// standard output is one, else $COLUMNS, else 80.
func (g *globals) width() int {
	if tty, w := g.term(g.stdout); tty && w > 0 {
		return w
	}
	if n, err := strconv.Atoi(os.Getenv("COLUMNS")); err == nil && n > 0 {
		return n
	}
	return defaultWidth
}

// term is terminal, unless a test replaced it.
func (g *globals) term(w io.Writer) (bool, int) {
	if g.terminal != nil {
		return g.terminal(w)
	}
	return terminal(w)
}
