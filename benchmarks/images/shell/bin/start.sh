#!/bin/sh
# Serves /app/www with busybox httpd and prints "ready" once it answers.
set -eu
. /app/bin/lib.sh

port="${PORT:-8090}"
root="${TMPDIR:-/tmp}/www"
mkdir -p "$root"
cp /app/www/* "$root/"
status_page > "$root/status.html"
log "serving $root on port $port"
busybox httpd -f -p "$port" -h "$root" &
pid=$!
trap 'kill "$pid" 2>/dev/null' INT TERM
if ! wait_http "http://127.0.0.1:$port/" 200; then
	log "httpd did not answer"
	exit 1
fi
echo ready
wait "$pid"
