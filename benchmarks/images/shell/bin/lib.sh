# Helpers sourced by start.sh.

log() {
	printf '%s start.sh: %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$*"
}

# status_page prints a small HTML page about the container.
status_page() {
	printf '<!doctype html>\n<title>status</title>\n<pre>\n'
	printf 'hostname: %s\n' "$(hostname 2>/dev/null || echo unknown)"
	printf 'kernel:   %s\n' "$(uname -sr)"
	printf 'started:  %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)"
	printf 'files:    %s\n' "$(ls /app/www | wc -l)"
	printf '</pre>\n'
}

# wait_http polls URL until it answers, at most $2 tries 50 ms apart.
wait_http() {
	i=0
	until busybox wget -q -O /dev/null "$1" 2>/dev/null; do
		i=$((i + 1))
		if [ "$i" -ge "$2" ]; then
			return 1
		fi
		busybox sleep 0.05
	done
}
