#!/usr/bin/env bash
# build-docker29.sh: build Docker 29's daemon (moby v2), its docker-proxy and a
# newer runc from source with `go install`, for the tests against Docker 29.
#
# Usage: scripts/build-docker29.sh [BINDIR]
#   BINDIR defaults to ${DOCKER29_DIR:-$HOME/.cache/dockerfence/docker29}/bin.
# Prints BINDIR on its last line. Binaries already built at the pinned
# versions are kept, so a second run does nothing (a cold build of dockerd
# takes about 5 minutes on 2 cores, mostly downloads and compiling).
#
# Run the daemon only inside a network namespace, with BINDIR first on PATH
# (for runc), e.g.:
#   nsenter --net=/run/netns/NS sysctl -w net.ipv4.ip_forward=1
#   PATH=BINDIR:$PATH nsenter --net=/run/netns/NS BINDIR/dockerd \
#     --firewall-backend=nftables --userland-proxy-path=BINDIR/docker-proxy ...
# containerd comes from Debian (1.6 works with Docker 29); Debian's own
# docker-proxy (20.10) does not, hence ours (or --userland-proxy=false).
set -euo pipefail

MOBY=github.com/moby/moby/v2@v2.0.0-beta.24 # Docker 29 engine
RUNC=github.com/opencontainers/runc@v1.5.2

BIN=${1:-${DOCKER29_DIR:-$HOME/.cache/dockerfence/docker29}/bin}
mkdir -p "$BIN"
BIN=$(cd "$BIN" && pwd)
export PATH=$PATH:/usr/local/go/bin # Go's default install place, if not on PATH
command -v go >/dev/null || { echo "build-docker29: go not found" >&2; exit 1; }

# Debian packages: a C compiler for runc's cgo (nsenter), libseccomp for
# runc's seccomp support (so dockerd's default seccomp profile works), and
# containerd (with its runc shim), which dockerd starts or is pointed at.
missing=()
for pkg in gcc libc6-dev pkg-config libseccomp-dev containerd; do
	dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'ok installed' || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
	[ "$(id -u)" -eq 0 ] || { echo "build-docker29: missing Debian packages: ${missing[*]} (install them as root)" >&2; exit 1; }
	echo "build-docker29: installing ${missing[*]}" >&2
	apt-get -qq update >&2
	DEBIAN_FRONTEND=noninteractive apt-get -qq install -y --no-install-recommends "${missing[@]}" >&2
fi

# install PKG@VERSION NAME [TAGS]: go install unless BIN/NAME already is that
# module version built with those tags (read from the binary's build info).
install() {
	local pkg=${1%@*} ver=${1#*@} name=$2 tags=${3:-} info
	if info=$(go version -m "$BIN/$name" 2>/dev/null) &&
		grep -q "^[[:space:]]*path[[:space:]]*$pkg\$" <<<"$info" &&
		grep -q "[[:space:]]$ver[[:space:]]" <<<"$info" &&
		{ [ -z "$tags" ] || grep -q -- "-tags=$tags\$" <<<"$info"; }; then
		echo "build-docker29: $name ($ver) already built" >&2
		return
	fi
	echo "build-docker29: building $name ($ver)" >&2
	GOBIN=$BIN CGO_ENABLED=1 go install ${tags:+-tags "$tags"} "$1"
}

install "${MOBY/@//cmd/dockerd@}" dockerd
install "${MOBY/@//cmd/docker-proxy@}" docker-proxy
install "$RUNC" runc seccomp

echo "$BIN"
