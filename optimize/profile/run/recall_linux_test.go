//go:build linux

package run_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"text/tabwriter"

	"github.com/coldstart-dev/coldstart/layers"
	"github.com/coldstart-dev/coldstart/optimize"
	"github.com/coldstart-dev/coldstart/optimize/profile"
	"github.com/coldstart-dev/coldstart/optimize/profile/run"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// imageRegular returns the regular files (and hard links) of img's merged
// filesystem, as absolute paths.
func imageRegular(t testing.TB, img v1.Image) map[string]bool {
	t.Helper()
	idxs, err := optimize.IndexImage(context.Background(), img)
	if err != nil {
		t.Fatal(err)
	}
	ov, err := layers.Merge(idxs...)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	for _, p := range ov.Paths() {
		r, ok := ov.Lookup(p)
		if !ok {
			continue
		}
		switch ov.Entry(r).Type {
		case layers.TypeReg, layers.TypeHardlink:
			out["/"+p] = true
		}
	}
	return out
}

const pythonApp = `import argparse
import json
import logging
import os
import sys
from collections import OrderedDict


def main():
    parser = argparse.ArgumentParser(description="demo app")
    parser.add_argument("--name", default="world")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, stream=sys.stdout)
    logging.getLogger("app").info("starting in %s", os.getcwd())
    print(json.dumps(OrderedDict(hello=args.name)), flush=True)
    print("ready", flush=True)


if __name__ == "__main__":
    main()
`

const pythonServer = `import json
import logging
import os
from http.server import BaseHTTPRequestHandler, HTTPServer

log = logging.getLogger("server")


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        body = json.dumps({"path": self.path, "pid": os.getpid()}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body)


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    srv = HTTPServer(("127.0.0.1", int(os.environ.get("PORT", "8080"))), Handler)
    log.info("listening on %s", srv.server_address)
    srv.serve_forever()
`

const shellApp = `#!/bin/sh
set -e
# A typical entrypoint: look around, then hand over to the real command.
ls -l /app >/dev/null
if [ -n "$GREETING" ]; then
  env >/dev/null
fi
exec "$@"
`

const nodeServer = `'use strict';
const http = require('http');
const path = require('path');
const log = require('tiny-log');
const routes = require('./lib/routes');
const config = require('./lib/config.json');

const server = http.createServer((req, res) => routes.handle(req, res, config));
server.listen(config.port, '127.0.0.1', () => {
  log.info('listening on ' + path.join('/', String(config.port)));
  console.log('ready');
});
`

const nodeRoutes = `'use strict';
const { URL } = require('url');
exports.handle = (req, res, config) => {
  const u = new URL(req.url, 'http://localhost');
  res.setHeader('Content-Type', 'application/json');
  res.end(JSON.stringify({ greeting: config.greeting, path: u.pathname }));
};
`

const nodeTinyLog = `'use strict';
const { format } = require('./format');
exports.info = (msg) => process.stderr.write(format('info', msg) + '\n');
`

// leftOut logs why a scenario is left out, and fails the test where the
// machine must have every tool (COLDSTART_REQUIRE_TOOLS=1, as in CI).
func leftOut(t *testing.T, why string) {
	t.Helper()
	if os.Getenv("COLDSTART_REQUIRE_TOOLS") == "1" && !testing.Short() {
		t.Errorf("COLDSTART_REQUIRE_TOOLS=1: %s", why)
		return
	}
	t.Log(why)
}

// TestRunStaticRecall runs the static and the run profiler on images built
// from real host programs and checks that the static prediction holds at
// least 90% of the regular files the real start opened (recall). Precision
// is the fraction of the predicted regular files that the start opened.
func TestRunStaticRecall(t *testing.T) {
	requireRun(t)
	requireHostLibs(t)
	type scenario struct {
		name string
		img  v1.Image
		opts []run.Option
		// min is the recall the static profiler must reach: 0.9, except
		// where a known limit of static analysis applies (see the case).
		min float64
	}
	var cases []scenario

	sh := baseTree(t)
	sh.addProgram("/usr/bin/ls")
	sh.addProgram("/usr/bin/env")
	sh.file("/app/entrypoint.sh", shellApp, 0o755)
	cases = append(cases, scenario{name: "shell script", img: imageOf(t, v1.Config{
		Entrypoint: []string{"/app/entrypoint.sh"}, Cmd: []string{"ls", "/"}, Env: []string{"GREETING=hi"},
	}, sh.layer()), min: 0.9})

	elf := baseTree(t)
	elf.addProgram("/usr/bin/ls")
	cases = append(cases, scenario{name: "ELF program (ls -l)", img: imageOf(t, v1.Config{
		Entrypoint: []string{"/usr/bin/ls", "-l", "/etc"},
	}, elf.layer()), min: 0.9})

	if _, err := os.Stat("/usr/bin/python3.11"); err == nil && !testing.Short() {
		py := baseTree(t)
		py.addProgram("/usr/bin/python3")
		py.addDir("/usr/lib/python3.11", "config-3.11-x86_64-linux-gnu", "test", "idlelib", "tkinter",
			"turtledemo", "lib2to3", "pydoc_data", "ensurepip", "distutils")
		pyBase := py.layer()
		app := newHostTree(t)
		app.file("/app/main.py", pythonApp, 0o644)
		app.file("/app/server.py", pythonServer, 0o644)
		appLayer := app.layer()
		cases = append(cases, scenario{name: "python HTTP server", img: imageOf(t, v1.Config{
			Entrypoint: []string{"python3", "server.py"}, WorkingDir: "/app", Env: []string{"PORT=8080"},
		}, pyBase, appLayer), opts: []run.Option{run.WithWaitOnPort(8080)}, min: 0.9})
		// argparse imports shutil (and with it bz2, lzma and their
		// extension modules) inside HelpFormatter.__init__: the static
		// profiler follows imports in the functions that main names.
		cases = append(cases, scenario{name: "python CLI app (argparse)", img: imageOf(t, v1.Config{
			Entrypoint: []string{"python3", "/app/main.py"}, WorkingDir: "/app",
		}, pyBase, appLayer), opts: []run.Option{run.WithWaitOnLine(regexp.MustCompile(`^ready$`))}, min: 0.9})
	} else {
		leftOut(t, "python3.11 is not installed, or -short: the python scenarios are left out")
	}

	if node, err := exec.LookPath("node"); err == nil && !testing.Short() {
		js := baseTree(t)
		js.addProgram(node)
		for _, f := range []string{"/etc/ssl/openssl.cnf", "/usr/lib/ssl/openssl.cnf"} {
			if _, err := os.Stat(f); err == nil {
				js.add(f)
			}
		}
		js.file("/app/package.json", `{"name": "demo", "version": "1.0.0", "main": "server.js"}`, 0o644)
		js.file("/app/server.js", nodeServer, 0o644)
		js.file("/app/lib/routes.js", nodeRoutes, 0o644)
		js.file("/app/lib/config.json", `{"port": 8081, "greeting": "hello"}`, 0o644)
		js.file("/app/lib/unused.js", "module.exports = 1;\n", 0o644)
		js.file("/app/node_modules/tiny-log/package.json", `{"name": "tiny-log", "main": "lib/index.js"}`, 0o644)
		js.file("/app/node_modules/tiny-log/lib/index.js", nodeTinyLog, 0o644)
		js.file("/app/node_modules/tiny-log/lib/format.js", "exports.format = (lvl, msg) => `[${lvl}] ${msg}`;\n", 0o644)
		js.file("/app/node_modules/tiny-log/README.md", "# tiny-log\n", 0o644)
		cases = append(cases, scenario{name: "node.js HTTP server", img: imageOf(t, v1.Config{
			Entrypoint: []string{"node", "server.js"}, WorkingDir: "/app",
		}, js.layer()), opts: []run.Option{run.WithWaitOnLine(regexp.MustCompile(`^ready$`))}, min: 0.9})
	} else {
		leftOut(t, "node is not installed, or -short: the node.js scenario is left out")
	}

	var table strings.Builder
	tw := tabwriter.NewWriter(&table, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "image\trun files\tstatic files\tboth\trecall\tprecision")
	for _, c := range cases {
		static, err := optimize.ProfileImage(context.Background(), c.img, profile.StaticProfiler())
		if err != nil {
			t.Fatal(err)
		}
		run, err := runImage(t, context.Background(), c.img, c.opts...)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if len(run.Warnings) > 0 {
			t.Errorf("%s: run warnings %q", c.name, run.Warnings)
		}
		regular := imageRegular(t, c.img)
		predicted := map[string]bool{}
		for _, f := range static.Files {
			if regular[f] {
				predicted[f] = true
			}
		}
		both := 0
		var missed []string
		opened := map[string]bool{}
		for _, f := range run.Files {
			opened[f] = true
		}
		if testing.Verbose() {
			var extra []string
			for _, f := range static.Files {
				if predicted[f] && !opened[f] {
					extra = append(extra, f)
				}
			}
			t.Logf("%s: predicted but not opened: %q", c.name, extra)
		}
		for _, f := range run.Files {
			if predicted[f] {
				both++
			} else {
				missed = append(missed, f)
			}
		}
		if len(run.Files) == 0 {
			t.Fatalf("%s: the run recorded nothing", c.name)
		}
		recall := float64(both) / float64(len(run.Files))
		precision := 0.0
		if len(predicted) > 0 {
			precision = float64(both) / float64(len(predicted))
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%.2f\t%.2f\n", c.name, len(run.Files), len(predicted), both, recall, precision)
		if recall < c.min {
			t.Errorf("%s: static recall %.2f < %.2f; opened but not predicted: %q", c.name, recall, c.min, missed)
		} else if len(missed) > 0 {
			t.Logf("%s: opened but not predicted: %q", c.name, missed)
		}
	}
	tw.Flush()
	t.Logf("static profile against a real start (files are regular files of the image):\n%s", table.String())
}
