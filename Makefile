# coldstart — see README.md. Every target works on a fresh Debian machine
# with Go; targets that need Debian packages say so.
GO          ?= go
STATICCHECK ?= honnef.co/go/tools/cmd/staticcheck@v0.8.2
BIN         := bin/coldstart
DEMO        := .demo
FUZZTIME    ?= 20s

.PHONY: all build test test-short lint demo bench bench-quick fuzz clean

all: build

build:
	$(GO) build -trimpath -o $(BIN) ./cmd/coldstart

# The whole test suite. Tests that need a registry server start Debian's
# docker-registry themselves (skipped, with the reason, when it is missing;
# CI sets COLDSTART_REQUIRE_TOOLS=1 to turn those skips into failures).
test:
	$(GO) test -count=1 -timeout 30m ./...

test-short:
	$(GO) test -short -count=1 ./...

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) run $(STATICCHECK) ./...

# Builds the sample image offline into an OCI layout and runs the main job on it.
demo: build
	@rm -rf $(DEMO) && mkdir -p $(DEMO)
	$(GO) run ./internal/demo/mkdemo $(DEMO)/src
	@echo "== before"
	$(BIN) analyze oci:$(DEMO)/src
	@echo "== optimize"
	$(BIN) optimize oci:$(DEMO)/src oci:$(DEMO)/out
	@echo "== verify"
	$(BIN) verify oci:$(DEMO)/src oci:$(DEMO)/out
	@echo "== after"
	$(BIN) analyze oci:$(DEMO)/out

bench:
	$(GO) test -run '^$$' -bench . -benchtime 5x ./layers/

bench-quick:
	$(GO) test -run '^$$' -bench . -benchtime 1x ./layers/

clean:
	rm -rf bin $(DEMO)
