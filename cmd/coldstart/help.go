package main

// The help texts of the commands, kept here so that each command's file
// holds its flags and its call.
const (
	rootLong = `coldstart makes container images start fast: it removes the bytes no
container sees, puts the files read at start-up first, re-encodes layers as
lazy-pullable eStargz or zstd:chunked while keeping cached layers
byte-identical, and reports what a cold start costs.

Image references:
  REGISTRY/REPO[:TAG|@DIGEST]   a registry (auth from the Docker config)
  oci:DIR[:TAG]                 an OCI image layout directory
  docker-archive:FILE           a docker save tarball

Exit status: 0 on success, 1 when the work failed (or verify found
differences, or a budget was exceeded), 2 on a usage error.`

	rootExample = `  coldstart optimize registry.example.com/app:1 registry.example.com/app:1-esgz
  coldstart verify oci:./app oci:./app-esgz
  coldstart report registry.example.com/app:1 --network edge`

	optimizeLong = `optimize reads SRC, drops what no container sees, puts start-up files first,
re-encodes the layers as eStargz (or zstd:chunked, gzip, zstd) and writes DST.
Layers nodes already hold (--base images, --cached digests, layers that are
already lazy) stay byte-identical. DST is checked first, then written complete
or not at all: blobs before manifests, the index last. Unless --compare=false,
it prints the estimated cold start before and after, computed from what it
read and wrote.`

	optimizeExample = `  coldstart optimize registry.example.com/app:1 registry.example.com/app:1-esgz
  coldstart optimize oci:./app oci:./app-esgz --base debian:bookworm-slim --format markdown
  coldstart optimize oci:./app oci:./app-zc --to zstd:chunked --profile startup.txt`

	profileLong = `profile lists the files IMAGE reads when a container starts, in the order
they are first read: the profile that "coldstart optimize --profile FILE" puts
first in each layer.

--mode static (the default) predicts them without running anything: the
entrypoint through PATH and links, ELF interpreters and libraries, "#!" chains,
shell scripts, and Python, Node.js and Java start-up.

--mode run starts the entrypoint and records what it really opens: the
image's filesystem is extracted (refusing entries that would land outside it),
mounted as an overlay, and the process runs as the image's user in new mount,
PID, UTS, IPC and network namespaces (loopback only) while fanotify records
every file opened. The run ends when the process exits, when a line of its
output matches --wait-on-line, when --wait-on-port accepts a connection inside
the sandbox, or after --period; then every process of the sandbox is killed
and everything is unmounted and removed. It needs Linux, root and fanotify,
and an image of this machine's architecture.

Arguments after IMAGE replace the image's Cmd, as with "docker run"; put
them after "--" when they start with "-" (profile IMAGE -- sh -c 'exec app').
--args ARG (repeatable) does the same. --entrypoint, --user and --env override the config in both modes.

Output: --format text (one path per line after "#" comment lines, usable as a
path list) or json, on standard output; --out FILE writes the profile JSON
atomically (and then standard output stays quiet unless --format is given).`

	reportLong = `report says what starting IMAGE costs on a node: bytes, requests and
estimated seconds to ready for a full pull, a lazy start (eStargz / zstd:chunked
layers mounted from their TOC, prefetch, then the start-up files' chunks on
demand; a layer that cannot be mounted lazily is downloaded whole first),
the lower bound and, when some layer is not
lazy yet, the lazy start after optimizing. With --previous IMAGE2 (an earlier
version the node holds) or eStargz / zstd:chunked layers, also podman's
partial pull: the TOCs, then the files in no layer it holds. Networks: datacenter (10 Gbit/s,
1 ms), cloud (1 Gbit/s, 10 ms), edge (100 Mbit/s, 50 ms) or RATE,RTT.

--profile takes "static" (predicted from the entrypoint) or a FILE: a profile
JSON, ctr-remote's --record-out JSON lines, or a path list. --measure pulls
IMAGE (a registry reference) for real, fully and lazily, through an
in-process proxy shaped with --shape RATE,RTT, and prints the measured figures
beside the estimate. --budget NETWORK=SECONDS fails the command (exit 1),
after printing, when the lazy start estimate on NETWORK exceeds SECONDS.`

	reportExample = `  coldstart report registry.example.com/app:1 --network edge --budget edge=2
  coldstart report localhost:5000/app:1 --measure --shape 100Mbit,20ms
  coldstart report oci:./app --cached sha256:... --format svg > start.svg
  coldstart report registry.example.com/app:2 --previous registry.example.com/app:1`

	compareLong = `compare estimates IMAGE and IMAGE2 as report does, with the same start-up
files (found in IMAGE), and puts them side by side with IMAGE2/IMAGE ratios.
--budget applies to IMAGE2.`

	compareExample = `  coldstart compare registry.example.com/app:1 registry.example.com/app:1-esgz --format markdown`

	analyzeLong = `analyze indexes every layer of IMAGE and reports, per layer, its digest,
media type, sizes, file count, lazy format and wasted bytes: regular files that
a later layer overwrote, deleted or hid. For a multi-platform index give
--platform OS/ARCH or --platform all. Text fits the terminal's width
($COLUMNS, or 80 columns, when standard output is not a terminal).`

	analyzeExample = `  coldstart analyze registry.example.com/app:1
  coldstart analyze oci:./app --format json | jq .wastedBytes`

	verifyLong = `verify applies the layers of SRC and DST with an applier of its own
(containerd's semantics; it shares no code with optimize) and compares the
filesystems, platform by platform: paths, types, modes, owners, mtimes, link
targets, xattrs, content. It does so as a full pull presents them and as a lazy
pull does (eStargz and zstd:chunked layers read from their TOC with the estargz
reader), checks every layer's digest and diff_id, every lazy layer's TOC
against its descriptor (the TOC digest stargz-snapshotter verifies, the
zstd:chunked annotations containers/storage reads) and every chunk against the
TOC. Each layer of both images is read once. Exit 0 only when all holds;
otherwise it names the first differences.`

	verifyExample = `  coldstart verify registry.example.com/app:1 registry.example.com/app:1-esgz
  coldstart verify oci:./app oci:./app-esgz --format json`

	cacheLong = `cache manages the local conversion cache: converted layers and layer
indexes kept so that the next optimize of an unchanged layer reuses them
(byte-identical) instead of converting again.

The cache lives in --cache-dir (default $XDG_CACHE_HOME/coldstart, or
~/.cache/coldstart). Every entry is verified when it is read; corrupt entries
are dropped. Entries are evicted least recently used first once the cache
grows past its size cap.`

	pruneLong = `prune evicts the least recently used entries until the cache holds at
most --cache-max-size (0 empties it), and removes leftovers of interrupted
writes.`
)
