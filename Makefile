# coldstart — see README.md. Every target works on a fresh Debian machine
# with Go; targets that need Debian packages say so.
GO          ?= go
# bash, for pipefail: `go test | summary` fails when go test does.
SHELL       := bash
.SHELLFLAGS := -o pipefail -c
STATICCHECK ?= honnef.co/go/tools/cmd/staticcheck@v0.8.2
BIN         := bin/coldstart
DEMO        := .demo
FUZZTIME    ?= 20s
# Minimizing a new input stops well before FUZZTIME: past it the fuzzer
# reports "context deadline exceeded" instead of a result.
FUZZMINIMIZETIME ?= 3s
# FUZZFRESH=1 first drops the inputs earlier runs cached for this module
# (under GOCACHE/fuzz), keeping only the seeds and testdata/fuzz. The
# cached inputs are replayed before fuzzing starts and count against
# FUZZTIME: each run adds some, and a few hundred of them (FuzzPlan
# optimizes and verifies an image per input) take longer than a short
# FUZZTIME, which then fails with "context deadline exceeded". CI sets it.
FUZZFRESH   ?=
# Fuzzing runs on Go 1.27 (the go command fetches it from the module proxy,
# 76 MB once): on Go 1.26 a -fuzztime deadline can leak out of the fuzz
# coordinator and fail a target that found nothing, "context deadline
# exceeded" with no input written (golang/go#75804, fixed in Go 1.27).
FUZZ_GOTOOLCHAIN ?= go1.27.3

.PHONY: all build test test-deps test-short lint demo bench bench-quick bench-deps bench-go fuzz clean \
	realstack-deps realstack-install realstack-smoke realstack-bench

# Fuzz targets, as package:Target; `make fuzz` runs each for FUZZTIME.
FUZZ_TARGETS := ./layers:FuzzIndex ./layers:FuzzMerge ./optimize:FuzzPlan ./optimize:FuzzPlanRoles ./optimize:FuzzPlanSymlinks \
	./internal/lazypull:FuzzOpenTOC ./optimize/profile:FuzzImport \
	./optimize/profile:FuzzStatic ./optimize/profile/internal/elfhdr:FuzzParseELF ./internal/testimage:FuzzApply \
	./internal/oracle:FuzzApply ./internal/oracle:FuzzReadTOC

all: build

build:
	$(GO) build -trimpath -o $(BIN) ./cmd/coldstart

# The Debian packages the tests use, and a command of each: a registry
# server, skopeo, podman and runc, a static busybox, rsvg-convert, and host
# programs the run profiler's tests copy into images (python3, node).
TEST_DEPS  := docker-registry skopeo podman runc busybox-static librsvg2-bin python3 nodejs ca-certificates
TEST_TOOLS := docker-registry skopeo podman runc busybox rsvg-convert python3 node

# Installs the missing test dependencies (as root; otherwise it says what
# is missing, and the tests that need it are skipped with the reason).
test-deps:
	@missing=; for c in $(TEST_TOOLS); do command -v $$c >/dev/null || missing="$$missing $$c"; done; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if [ "$$(id -u)" != 0 ]; then \
		echo "test-deps: missing$$missing; as root, make test-deps installs them (apt-get install $(TEST_DEPS)); the tests that need them are skipped"; \
		exit 0; \
	fi; \
	echo "test-deps: installing$$missing (apt-get install $(TEST_DEPS))"; \
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(TEST_DEPS) >/dev/null; \
	systemctl stop docker-registry >/dev/null 2>&1 || true  # the package may start one on :5000; tests start their own

# The whole test suite (about 4 minutes on 2 busy cores), then every skipped
# test with its reason. Tests that need a registry server start Debian's
# docker-registry themselves; tests whose tool is missing are skipped, and
# CI sets COLDSTART_REQUIRE_TOOLS=1 to turn those skips into failures.
# Building the bench images is make bench-quick's (COLDSTART_BENCH_BUILD=1).
test: test-deps
	$(GO) test -count=1 -timeout 30m -json ./... | $(GO) run ./internal/testsummary

test-short:
	$(GO) test -short -count=1 ./...

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) run $(STATICCHECK) ./...
	cd $(REALSTACK) && $(GO) vet ./... && $(GO) run $(STATICCHECK) ./...

# Builds the sample image offline into an OCI layout and runs the main job on it.
demo: build
	@rm -rf $(DEMO) && mkdir -p $(DEMO)
	$(GO) run ./internal/demo/mkdemo $(DEMO)/src
	@echo "== before"
	$(BIN) analyze oci:$(DEMO)/src
	@echo "== optimize (lazy start: what a node with stargz-snapshotter waits for)"
	$(BIN) optimize --cache-dir $(DEMO)/cache oci:$(DEMO)/src oci:$(DEMO)/out
	@echo "== verify"
	$(BIN) verify oci:$(DEMO)/src oci:$(DEMO)/out
	@echo "== after"
	$(BIN) analyze oci:$(DEMO)/out

# The benchmark report: real images built from Debian packages, conversion
# against the reference converter, time to ready on a shaped loopback
# registry, the real stack, podman pulling a new version partially. Needs
# Linux and root; installs what is missing (Debian packages).
# Writes benchmarks/RESULTS.md, results.json and the charts.
bench: bench-deps
	$(GO) run ./benchmarks/cmd/bench -runs 3 -realstack-runs shell=7 -out benchmarks

# A small subset (the shell image, one run, the edge network), under 5
# minutes once the Debian base is cached; CI runs it. Writes into
# benchmarks/.work/quick so the committed results stay as they are.
bench-quick: bench-deps
	@mkdir -p benchmarks/.work/quick
	COLDSTART_BENCH_BUILD=1 $(GO) test -count=1 -run '^TestBuild' ./benchmarks/build/
	$(GO) run ./benchmarks/cmd/bench -quick -out benchmarks/.work/quick

bench-deps:
	@command -v debootstrap >/dev/null && command -v docker-registry >/dev/null || \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap docker-registry >/dev/null)
	@command -v runc >/dev/null && command -v fusermount3 >/dev/null && command -v skopeo >/dev/null && command -v podman >/dev/null || \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends runc fuse3 skopeo podman >/dev/null)

# The real lazy-pulling stack (benchmarks/realstack, its own Go module):
# containerd v2 + stargz-snapshotter + runc, docker-registry behind a
# tbf-shaped veth link. Linux and root. Binaries go to
# benchmarks/.work/realstack/bin.
REALSTACK       := benchmarks/realstack
REALSTACK_IMAGE ?= python
REALSTACK_RUNS  ?= 5
REALSTACK_RATE  ?= 100
REALSTACK_NODES ?= cold,warm
REALSTACK_TOOLS := $(CURDIR)/benchmarks/.work/realstack/tools

realstack-deps:
	@command -v runc >/dev/null && command -v fusermount3 >/dev/null && command -v docker-registry >/dev/null && \
		command -v skopeo >/dev/null && command -v tc >/dev/null || \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
			runc fuse3 docker-registry skopeo iproute2 >/dev/null)

realstack-install:
	cd $(REALSTACK) && $(GO) run ./cmd/realstack -install

# Builds the stack, converts the demo image with coldstart optimize, pulls
# it lazily (remote snapshots or the test fails) and runs it to its ready line.
realstack-smoke: realstack-deps
	cd $(REALSTACK) && $(GO) test -count=1 -run TestSmoke -v -timeout 30m .

# Every variant of one bench image (REALSTACK_IMAGE) on cold and warm nodes;
# JSON in benchmarks/.work/realstack/results/IMAGE.json, a table on stderr.
realstack-bench: bench-deps realstack-deps
	$(GO) run ./benchmarks/build/cmd/benchimages -out benchmarks/.work/layouts -base $(REALSTACK_IMAGE)
	@mkdir -p $(REALSTACK_TOOLS) benchmarks/.work/realstack/results
	$(GO) build -trimpath -o $(REALSTACK_TOOLS)/coldstart ./cmd/coldstart
	$(GO) build -trimpath -o $(REALSTACK_TOOLS)/refconvert ./benchmarks/refconvert
	cd $(REALSTACK) && $(GO) run ./cmd/realstack -image $(REALSTACK_IMAGE) \
		-recipe ../images/$(REALSTACK_IMAGE)/recipe.json \
		-original ../.work/layouts/$(REALSTACK_IMAGE) -base ../.work/layouts/$(REALSTACK_IMAGE)-base \
		-coldstart $(REALSTACK_TOOLS)/coldstart -refconvert $(REALSTACK_TOOLS)/refconvert \
		-rate $(REALSTACK_RATE) -runs $(REALSTACK_RUNS) -nodes $(REALSTACK_NODES) \
		-out ../.work/realstack/results/$(REALSTACK_IMAGE).json

# Go micro-benchmarks (indexing, encoding, cache).
bench-go:
	$(GO) test -run '^$$' -bench . -benchtime 5x ./layers/ ./optimize/

fuzz:
	@if [ -n "$(FUZZFRESH)" ]; then \
		d="$$($(GO) env GOCACHE)/fuzz/$$($(GO) list -m)"; echo "== dropping cached fuzz inputs in $$d"; rm -rf "$$d"; \
	fi
	@for t in $(FUZZ_TARGETS); do \
		pkg=$${t%%:*}; fn=$${t##*:}; \
		echo "== fuzz $$pkg $$fn ($(FUZZTIME))"; \
		GOTOOLCHAIN=$(FUZZ_GOTOOLCHAIN) $(GO) test -run '^$$' -fuzz "^$$fn$$" -fuzztime $(FUZZTIME) -fuzzminimizetime $(FUZZMINIMIZETIME) $$pkg || exit 1; \
	done

clean:
	rm -rf bin $(DEMO)
