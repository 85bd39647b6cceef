GO      ?= go
BIN     ?= bin/dockerfence
VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
COMMIT  ?= $(shell git rev-parse --short HEAD 2>/dev/null)
LDFLAGS := -X main.version=$(VERSION) -X main.commit=$(COMMIT)

# Commands the demo and the tests need, and the Debian package that provides each.
DEMO_DEPS := nft:nftables ip:iproute2 busybox:busybox-static
TEST_DEPS := $(DEMO_DEPS) iptables:iptables nsenter:util-linux dockerd:docker.io containerd:containerd runc:runc strace:strace
# packaging/deb_test.go builds the package (dpkg-deb), lints it and installs it
# into a throw-away root whose shell is busybox (busybox-static, above).
PKG_DEPS  := dpkg-deb:dpkg lintian:lintian
TEST_DEPS += $(PKG_DEPS)

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
E2E := -count=1 -v -run 'TestDaemonAgainstDocker|TestContainersAgainstDocker|TestIngressAgainstDocker|TestLeakIngress' ./integration
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

# install puts the binary, the systemd unit (ExecStart=$(BINDIR)/dockerfence),
# the man pages, the bash, zsh and fish completions and, if there is none
# yet, the default policy in place; it does not enable or start anything.
# The unit goes to $(PREFIX)/lib/systemd/system, which systemd reads for
# PREFIX /usr/local and /usr: an install never overwrites what the admin puts
# in /etc/systemd/system (a copy of the unit or a drop-in), which wins.
# DESTDIR stages the whole tree elsewhere (make deb does).
PREFIX      ?= /usr/local
BINDIR      ?= $(PREFIX)/bin
MANDIR      ?= $(PREFIX)/share/man
UNITDIR     ?= $(PREFIX)/lib/systemd/system
BASHCOMPDIR ?= $(PREFIX)/share/bash-completion/completions
ZSHCOMPDIR  ?= $(PREFIX)/share/zsh/site-functions
FISHCOMPDIR ?= $(PREFIX)/share/fish/vendor_completions.d
POLICY      := /etc/dockerfence/policy.yaml
.PHONY: install uninstall docs deb
install: docs
	install -D -m 0755 $(BIN) $(DESTDIR)$(BINDIR)/dockerfence
	install -d -m 0755 $(DESTDIR)$(UNITDIR) $(DESTDIR)$(MANDIR)/man8
	sed 's|/usr/local/bin/dockerfence|$(BINDIR)/dockerfence|g' packaging/dockerfence.service > $(DESTDIR)$(UNITDIR)/dockerfence.service
	chmod 0644 $(DESTDIR)$(UNITDIR)/dockerfence.service
	@grep -qx 'ExecStart=$(BINDIR)/dockerfence run' $(DESTDIR)$(UNITDIR)/dockerfence.service || \
		{ echo "packaging/dockerfence.service: no ExecStart=/usr/local/bin/dockerfence run to point at $(BINDIR)" >&2; exit 1; }
	install -m 0644 $(DOCS)/man/*.8 $(DESTDIR)$(MANDIR)/man8/
	install -D -m 0644 $(DOCS)/completions/dockerfence $(DESTDIR)$(BASHCOMPDIR)/dockerfence
	install -D -m 0644 $(DOCS)/completions/_dockerfence $(DESTDIR)$(ZSHCOMPDIR)/_dockerfence
	install -D -m 0644 $(DOCS)/completions/dockerfence.fish $(DESTDIR)$(FISHCOMPDIR)/dockerfence.fish
	@if [ ! -e $(DESTDIR)$(POLICY) ]; then \
		install -d -m 0755 $(DESTDIR)$(dir $(POLICY)) && \
		$(BIN) policy default > $(DESTDIR)$(POLICY) && chmod 0644 $(DESTDIR)$(POLICY) && \
		echo "wrote the default policy to $(DESTDIR)$(POLICY)"; \
	fi
	@if [ -e $(DESTDIR)/etc/systemd/system/dockerfence.service ]; then \
		echo "note: $(DESTDIR)/etc/systemd/system/dockerfence.service overrides the unit just installed in $(UNITDIR); remove it unless you made it (older make install wrote it)"; \
	fi

# uninstall removes what install put, with the same PREFIX and DESTDIR, but
# the policy: PURGE=1 removes that too. Stop and disable the daemon first
# (systemctl disable --now dockerfence); its table stays until
# "dockerfence delete".
uninstall:
	rm -f $(DESTDIR)$(BINDIR)/dockerfence $(DESTDIR)$(UNITDIR)/dockerfence.service
	rm -f $(DESTDIR)$(MANDIR)/man8/dockerfence.8 $(DESTDIR)$(MANDIR)/man8/dockerfence-*.8
	rm -f $(DESTDIR)$(BASHCOMPDIR)/dockerfence $(DESTDIR)$(ZSHCOMPDIR)/_dockerfence $(DESTDIR)$(FISHCOMPDIR)/dockerfence.fish
	@if [ "$(PURGE)" = 1 ]; then rm -f $(DESTDIR)$(POLICY) && rmdir --ignore-fail-on-non-empty $(DESTDIR)$(dir $(POLICY)); \
	elif [ -e $(DESTDIR)$(POLICY) ]; then echo "kept $(DESTDIR)$(POLICY) (make uninstall PURGE=1 removes it)"; fi

# docs writes the man pages and the completion scripts with the hidden
# "dockerfence gen-docs", from the commands themselves. The pages are dated
# by the commit, so that two builds of one commit write the same files, and
# the builder's DOCKER_HOST does not become --docker-host's documented default.
DOCS ?= bin/docs
SOURCE_DATE_EPOCH ?= $(shell git log -1 --format=%ct 2>/dev/null || date +%s)
docs: build
	rm -rf $(DOCS)
	env -u DOCKER_HOST SOURCE_DATE_EPOCH=$(SOURCE_DATE_EPOCH) $(BIN) gen-docs --man $(DOCS)/man --completions $(DOCS)/completions

# deb builds the Debian package bin/dockerfence_VERSION_ARCH.deb with
# packaging/mkdeb.sh (version from git describe, or DEB_VERSION=...).
# packaging/deb_test.go installs, upgrades and purges it in a throw-away root.
deb:
	GO="$(GO)" MAKE="$(MAKE)" SOURCE_DATE_EPOCH=$(SOURCE_DATE_EPOCH) packaging/mkdeb.sh

clean:
	rm -rf bin/
