#!/usr/bin/env bash
# mkdeb.sh builds the Debian package of dockerfence with dpkg-deb (no
# debhelper) and prints its path as its last line. make deb runs it.
#
# The files are what "make install PREFIX=/usr" puts in a staging tree (one
# recipe for both: the binary, the unit with ExecStart=/usr/bin/dockerfence,
# the default policy, man pages, completions), in Debian's directories, plus
# the copyright, the changelog, a lintian override, the maintainer scripts of
# packaging/deb and md5sums. The binary is built with CGO_ENABLED=0: static,
# it runs on any Debian of its architecture.
#
# Environment:
#   DEB_VERSION     the package's version; default: from git describe (below)
#   DEB_ARCH        the Debian architecture; default: go env GOARCH, mapped
#   DEB_OUT         the directory of the .deb; default: bin
#   DEB_MAINTAINER  the Maintainer field
#   GO, MAKE        the go and make commands
#   SOURCE_DATE_EPOCH  the date of the man pages and the changelog; default:
#                   the commit's
set -euo pipefail
cd "$(dirname "$0")/.."

GO=${GO:-go}
MAKE=${MAKE:-make}
out=${DEB_OUT:-bin}
maintainer=${DEB_MAINTAINER:-dockerfence maintainers <maintainers@users.noreply.r-seed-0bed755a.example>}
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || date +%s)}

# debian_version maps git describe to a Debian version that grows with every
# commit: tag v1.2.3 -> 1.2.3-1; 4 commits after it -> 1.2.3+4.gHASH-1;
# before any tag -> 0~N.gHASH-1, N the number of commits (~ sorts before
# everything, so the first tagged release is newer). A dirty tree adds
# +dirty.
debian_version() {
	local d n
	if d=$(git describe --tags --match 'v[0-9]*' --dirty=+dirty 2>/dev/null); then
		d=${d#v}
		# 1.2.3-4-gabc1234[+dirty] -> 1.2.3+4.gabc1234[+dirty]
		d=$(printf '%s\n' "$d" | sed -E 's/-([0-9]+)-(g[0-9a-f]+)/+\1.\2/')
	else
		n=$(git rev-list --count HEAD)
		d="0~$n.g$(git rev-parse --short HEAD)"
		git diff --quiet HEAD 2>/dev/null || d="$d+dirty"
	fi
	printf '%s-1\n' "$d"
}

# debian_arch maps a GOARCH to Debian's name for the architecture.
debian_arch() {
	case "$1" in
	amd64 | arm64 | s390x | riscv64 | loong64) echo "$1" ;;
	386) echo i386 ;;
	arm) echo armhf ;;
	ppc64le) echo ppc64el ;;
	mips64le) echo mips64el ;;
	*)
		echo "mkdeb.sh: no Debian architecture for GOARCH $1: set DEB_ARCH" >&2
		return 1
		;;
	esac
}

version=${DEB_VERSION:-$(debian_version)}
arch=${DEB_ARCH:-$(debian_arch "$($GO env GOARCH)")}
case "$version" in
[0-9]*-*) ;;
*)
	echo "mkdeb.sh: version $version: a Debian version starts with a digit and ends with -REVISION" >&2
	exit 1
	;;
esac

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
root=$work/root
umask 022

# The files, as make install puts them (the unit's ExecStart made
# /usr/bin/dockerfence there). The binary says the package's version, and
# is stripped (-s -w) as Debian ships binaries.
commit=$(git rev-parse --short HEAD 2>/dev/null || true)
CGO_ENABLED=0 $MAKE --no-print-directory install \
	DESTDIR="$root" PREFIX=/usr ZSHCOMPDIR=/usr/share/zsh/vendor-completions \
	BIN="$work/dockerfence" DOCS="$work/docs" \
	LDFLAGS="-s -w -X main.version=$version -X main.commit=$commit" >&2

gzip -9n "$root"/usr/share/man/man8/*.8
doc=$root/usr/share/doc/dockerfence
install -d -m 0755 "$doc" "$root/usr/share/lintian/overrides"
install -m 0644 packaging/deb/copyright "$doc/copyright"
install -m 0644 packaging/deb/lintian-overrides "$root/usr/share/lintian/overrides/dockerfence"
{
	printf 'dockerfence (%s) unstable; urgency=medium\n\n' "$version"
	printf '  * Built by make deb from commit %s.\n\n' "${commit:-unknown}"
	printf ' -- %s  %s\n' "$maintainer" "$(date -u -R -d "@$SOURCE_DATE_EPOCH")"
} | gzip -9n >"$doc/changelog.Debian.gz"
chmod 0644 "$doc/changelog.Debian.gz"

# Every file and directory belongs to root (dpkg-deb --root-owner-group);
# the modes are the ones above, made explicit here whatever the umask was.
find "$root" -type d -exec chmod 0755 {} +
find "$root" -type f -exec chmod 0644 {} +
chmod 0755 "$root/usr/bin/dockerfence"

size=$(du -sk --apparent-size "$root" | cut -f1)
install -d -m 0755 "$root/DEBIAN"
(cd "$root" && find . -path ./DEBIAN -prune -o -type f ! -path './etc/*' -printf '%P\n' | LC_ALL=C sort | xargs md5sum) >"$root/DEBIAN/md5sums"
(cd "$root" && find etc -type f -printf '/%p\n' | LC_ALL=C sort) >"$root/DEBIAN/conffiles"
cat >"$root/DEBIAN/control" <<CONTROL
Package: dockerfence
Version: $version
Architecture: $arch
Maintainer: $maintainer
Installed-Size: $size
Section: admin
Priority: optional
Homepage: https://github.com/dockerfence/dockerfence
Suggests: docker.io | docker-ce
Description: egress fence for Docker containers, in an nftables table
 dockerfence keeps Docker containers away from the networks they must not
 reach, and keeps them away when Docker recreates a network. It owns one
 nftables table, inet dockerfence, whose chains run before Docker's own
 filter, so that nothing Docker does to its chains can undo a denial.
 .
 The daemon (dockerfence.service) follows Docker's networks and containers,
 repairs the table when something changes it and reloads the policy,
 /etc/dockerfence/policy.yaml. The package neither enables nor starts it.
CONTROL
for s in postinst prerm postrm; do
	install -m 0755 "packaging/deb/$s" "$root/DEBIAN/$s"
done
chmod 0644 "$root/DEBIAN/md5sums" "$root/DEBIAN/conffiles" "$root/DEBIAN/control"

mkdir -p "$out"
deb=$out/dockerfence_${version}_${arch}.deb
dpkg-deb --root-owner-group -Zxz --build "$root" "$deb" >&2
echo "$deb"
