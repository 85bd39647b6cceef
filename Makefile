GO      ?= go
BIN     ?= bin/dockerfence
VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
COMMIT  ?= $(shell git rev-parse --short HEAD 2>/dev/null)
LDFLAGS := -X main.version=$(VERSION) -X main.commit=$(COMMIT)

# Commands the demo and the tests need, and the Debian package that provides each.
DEMO_DEPS := nft:nftables ip:iproute2 busybox:busybox-static
TEST_DEPS := $(DEMO_DEPS) iptables:iptables nsenter:util-linux

.PHONY: all build check test lint clean demo demo-root demo-deps test-deps

all: build

build:
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/dockerfence

# check is the whole test suite, as CI runs it: lint, then the unit tests and
# the integration tests (network namespaces, real packets) with the race
# detector. As root it installs the packages the tests need first.
check: test-deps lint test

test:
	$(GO) test -race -count=1 ./...

lint:
	@out="$$(gofmt -l .)"; \
	if [ -n "$$out" ]; then echo "gofmt -l: these files need gofmt:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) tool staticcheck ./...

test-deps:
	@if [ "$$(id -u)" -ne 0 ]; then echo "make check: not root, so the integration tests will skip (they need network namespaces)" >&2; exit 0; fi; \
	$(MAKE) --no-print-directory install-deps DEPS="$(TEST_DEPS)"

# demo runs scripts/demo.sh: a fake Docker host in network namespaces, fenced
# by dockerfence. It needs root, and touches nothing outside its namespaces.
demo: demo-root demo-deps build
	./scripts/demo.sh $(BIN)

demo-root:
	@if [ "$$(id -u)" -ne 0 ]; then echo "make demo needs root (network namespaces)" >&2; exit 1; fi

demo-deps: demo-root
	@$(MAKE) --no-print-directory install-deps DEPS="$(DEMO_DEPS)"

# install-deps installs the packages of DEPS whose command is missing.
.PHONY: install-deps
install-deps:
	@missing=""; \
	for dep in $(DEPS); do \
		command -v "$${dep%%:*}" >/dev/null 2>&1 || missing="$$missing $${dep#*:}"; \
	done; \
	if [ -n "$$missing" ]; then \
		command -v apt-get >/dev/null 2>&1 || { echo "missing packages:$$missing (install them; no apt-get here)" >&2; exit 1; }; \
		echo "installing$$missing"; \
		apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y $$missing; \
	fi

clean:
	rm -rf bin/
