GO      ?= go
BIN     ?= bin/dockerfence
VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
COMMIT  ?= $(shell git rev-parse --short HEAD 2>/dev/null)
LDFLAGS := -X main.version=$(VERSION) -X main.commit=$(COMMIT)

# Commands the demo and the tests need, and the Debian package that provides each.
DEMO_DEPS := nft:nftables ip:iproute2 busybox:busybox-static
TEST_DEPS := $(DEMO_DEPS) iptables:iptables nsenter:util-linux dockerd:docker.io containerd:containerd runc:runc strace:strace

.PHONY: all build check test lint clean demo demo-root demo-deps test-deps

all: build

build:
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/dockerfence

# check is the whole test suite, as CI runs it: lint, then the unit tests and
# the integration tests (network namespaces, real packets) with the race
# detector. As root it installs the packages the tests need first.
check: test-deps lint test

# test runs go test -json through internal/testsum: a line a package as it
# ends (time and counts), a line a test of 10 s or more, what is running
# after 30 s without a line, every failed test's output in full, then the
# skipped tests with their reasons, and last "N passed, N failed, N skipped".
# It fails if a test, a package or a build failed. TEST_PKGS picks the
# packages (make test TEST_PKGS="./policy ./fence"), TEST_FLAGS the flags.
TEST_PKGS  ?= ./...
TEST_FLAGS ?= -race -count=1
test:
	@$(GO) build -o bin/testsum ./internal/testsum
	@GO="$(GO)" bin/testsum $(TEST_FLAGS) $(TEST_PKGS)

lint:
	@out="$$(gofmt -l .)"; \
	if [ -n "$$out" ]; then echo "gofmt -l: these files need gofmt:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) tool staticcheck ./...

# e2e runs the end-to-end suite (a real dockerd in a network namespace and
# "dockerfence run" next to it) against Debian's Docker 20.10; make check
# runs it too. e2e-docker29 builds Docker 29 (moby v2, about 5 minutes the
# first time, cached after) and runs the same suite against it, with its
# native nftables firewall backend.
E2E := -count=1 -v -run TestDaemonAgainstDocker ./integration
.PHONY: e2e e2e-docker29
e2e: test-deps
	$(GO) test $(E2E)

e2e-docker29: test-deps
	bin=$$(./scripts/build-docker29.sh | tail -n 1) && \
	DOCKERFENCE_ENGINE=docker29 DOCKER29_BIN=$$bin $(GO) test $(E2E)

# bench runs the benchmark suite (integration/bench) in network namespaces
# of its own and regenerates BENCHMARKS.md, bench.json and the plots in
# docs/bench. bench-quick is the shorter run (under 10 minutes on 2 cores).
BENCH_DEPS := $(TEST_DEPS) iperf3:iperf3
.PHONY: bench bench-quick
bench: demo-root
	@$(MAKE) --no-print-directory install-deps DEPS="$(BENCH_DEPS)"
	$(GO) run ./integration/bench -out bench.json -md BENCHMARKS.md -plots docs/bench

bench-quick: demo-root
	@$(MAKE) --no-print-directory install-deps DEPS="$(BENCH_DEPS)"
	$(GO) run ./integration/bench -quick -out bench-quick.json

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

# install-deps installs the packages of DEPS whose command is missing. A
# policy-rc.d that refuses every start keeps the packages' services (dockerd,
# containerd) from starting in the machine's own namespace: the tests start
# their own daemons, each inside a network namespace of its own.
.PHONY: install-deps
install-deps:
	@missing=""; \
	for dep in $(DEPS); do \
		command -v "$${dep%%:*}" >/dev/null 2>&1 || missing="$$missing $${dep#*:}"; \
	done; \
	if [ -n "$$missing" ]; then \
		command -v apt-get >/dev/null 2>&1 || { echo "missing packages:$$missing (install them; no apt-get here)" >&2; exit 1; }; \
		echo "installing$$missing"; \
		rcd=""; \
		if [ ! -e /usr/sbin/policy-rc.d ]; then \
			rcd=/usr/sbin/policy-rc.d; printf '#!/bin/sh\nexit 101\n' > $$rcd; chmod 755 $$rcd; \
		fi; \
		apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y $$missing; rc=$$?; \
		[ -z "$$rcd" ] || rm -f $$rcd; \
		exit $$rc; \
	fi

# install puts the binary, the systemd unit and (if there is none yet) the
# default policy in place; it does not enable or start anything.
PREFIX ?= /usr/local
.PHONY: install
install: build
	install -D -m 0755 $(BIN) $(DESTDIR)$(PREFIX)/bin/dockerfence
	install -D -m 0644 packaging/dockerfence.service $(DESTDIR)/etc/systemd/system/dockerfence.service
	@if [ ! -e $(DESTDIR)/etc/dockerfence/policy.yaml ]; then \
		install -d -m 0755 $(DESTDIR)/etc/dockerfence && \
		$(BIN) policy default > $(DESTDIR)/etc/dockerfence/policy.yaml && \
		echo "wrote the default policy to $(DESTDIR)/etc/dockerfence/policy.yaml"; \
	fi

clean:
	rm -rf bin/
