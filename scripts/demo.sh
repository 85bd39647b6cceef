#!/usr/bin/env bash
# demo.sh: dockerfence on a fake Docker host, built from network namespaces.
#
#   ctr (172.20.0.2) --- br-demo 172.20.0.1/16 [host] 192.168.100.254 --- lan  (192.168.100.50, TCP 5432)
#                                                     203.0.113.254   --- inet (203.0.113.10,   TCP 80)
#
# host forwards between them like a Docker host. The demo shows ctr reaching
# the LAN database and the internet host, runs `dockerfence apply` inside host
# (and nowhere else), and shows the LAN now denied and the internet still open.
#
# Usage (as root): scripts/demo.sh [path/to/dockerfence]   (default bin/dockerfence)
# Exit status: 0 when every result is the expected one, non-zero otherwise.
# Everything it creates lives in namespaces named dfdemo-<pid>-*, removed on exit.
set -euo pipefail

die() { echo "demo: $*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || die "needs root (network namespaces)"
for c in ip busybox ss timeout; do
	command -v "$c" >/dev/null 2>&1 || die "$c not found (apt-get install -y nftables iproute2 busybox-static)"
done
BUSYBOX=$(command -v busybox)
"$BUSYBOX" nc --help 2>&1 | grep -q -- '-e PROG' || die "$BUSYBOX has no nc applet with -e"

DF=$(readlink -f "${1:-bin/dockerfence}")
[ -x "$DF" ] || die "no dockerfence binary at ${1:-bin/dockerfence} (run make build)"

PREFIX="dfdemo-$$-"
HOST=${PREFIX}host CTR=${PREFIX}ctr LAN=${PREFIX}lan INET=${PREFIX}inet
NSES=()  # namespaces this run created
PIDS=()  # server processes this run started
TMP=$(mktemp -d /tmp/dfdemo.XXXXXX)

cleanup() {
	local rc=$? pid ns
	set +e
	trap - EXIT INT TERM
	for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null; done
	for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null; done
	for ns in "${NSES[@]}"; do
		# A server's per-connection child may linger: it is ours, in our namespace.
		for pid in $(ip netns pids "$ns" 2>/dev/null); do kill "$pid" 2>/dev/null; done
		ip netns del "$ns" 2>/dev/null || echo "demo: could not delete namespace $ns" >&2
	done
	rm -rf "$TMP"
	echo
	if [ "$rc" -eq 0 ]; then
		echo "demo: PASS (namespaces ${PREFIX}* removed)"
	else
		echo "demo: FAIL (exit $rc; namespaces ${PREFIX}* removed)" >&2
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

heading() { printf '\n== %s\n' "$*"; }
run() { echo "\$ $*"; "$@"; }              # show a command, then run it
in_ns() { local ns=$1; shift; ip netns exec "$ns" "$@"; }

# The machine's own table inet dockerfence (stateless, or "absent"): the demo
# compares it before and after to prove it never touched the root namespace.
root_table() {
	if command -v nft >/dev/null 2>&1; then
		nft -s list table inet dockerfence 2>/dev/null || echo absent
	else
		echo "nft not installed"
	fi
}

newns() {
	ip netns add "$1"
	NSES+=("$1")
	ip -n "$1" link set lo up
}

# link NS IFACE PEERNS PEERIFACE: a veth pair created inside NS, never in the root namespace.
link() {
	ip -n "$1" link add "$2" type veth peer name "$4" netns "$3"
	ip -n "$1" link set "$2" up
	ip -n "$3" link set "$4" up
}

# serve NS PORT BANNER: a TCP server in NS answering BANNER to each connection.
serve() {
	local ns=$1 port=$2 banner=$3 i
	ip netns exec "$ns" "$BUSYBOX" nc -ll -p "$port" -e "$BUSYBOX" echo "$banner" </dev/null >"$TMP/$ns.$port.log" 2>&1 &
	PIDS+=("$!")
	for i in $(seq 50); do
		if [ -n "$(in_ns "$ns" ss -Hltn "sport = :$port")" ]; then return 0; fi
		sleep 0.1
	done
	die "server on $ns port $port did not start: $(cat "$TMP/$ns.$port.log")"
}

FAILED=0
# probe LABEL ADDR PORT EXPECT BANNER: connect from ctr and compare with EXPECT (allowed|denied).
probe() {
	local label=$1 addr=$2 port=$3 expect=$4 banner=$5 out result
	heading "ctr -> $label $addr:$port (expect: $expect)"
	if out=$(timeout 10 ip netns exec "$CTR" "$BUSYBOX" nc -w 3 "$addr" "$port" </dev/null 2>&1) &&
		[ "$out" = "$banner" ]; then
		result=allowed
	else
		result=denied
	fi
	[ -n "$out" ] || out="(no answer within 3s)"
	printf '   %s\n' "$out"
	if [ "$result" = "$expect" ]; then
		echo "   result: $result, as expected"
	else
		echo "   result: $result, EXPECTED $expect" >&2
		FAILED=$((FAILED + 1))
	fi
}

root_before=$(root_table)

heading "sandbox: namespaces ${PREFIX}{host,ctr,lan,inet}"
for ns in "$HOST" "$CTR" "$LAN" "$INET"; do newns "$ns"; done

# host: a Docker-like bridge with one container, plus a LAN and an uplink.
ip -n "$HOST" link add br-demo type bridge
ip -n "$HOST" addr add 172.20.0.1/16 dev br-demo
ip -n "$HOST" link set br-demo up
link "$HOST" veth-ctr "$CTR" eth0
ip -n "$HOST" link set veth-ctr master br-demo
ip -n "$CTR" addr add 172.20.0.2/16 dev eth0
ip -n "$CTR" route add default via 172.20.0.1

link "$HOST" veth-lan "$LAN" eth0
ip -n "$HOST" addr add 192.168.100.254/24 dev veth-lan
ip -n "$LAN" addr add 192.168.100.50/24 dev eth0
ip -n "$LAN" route add default via 192.168.100.254

link "$HOST" veth-inet "$INET" eth0
ip -n "$HOST" addr add 203.0.113.254/24 dev veth-inet
ip -n "$INET" addr add 203.0.113.10/24 dev eth0
ip -n "$INET" route add default via 203.0.113.254

# /proc/sys/net is the opener's network namespace: this is host's ip_forward only.
in_ns "$HOST" sh -c 'echo 1 >/proc/sys/net/ipv4/ip_forward'

LAN_BANNER="hello from the lan database 192.168.100.50:5432"
INET_BANNER="hello from the internet host 203.0.113.10:80"
serve "$LAN" 5432 "$LAN_BANNER"
serve "$INET" 80 "$INET_BANNER"
echo "host:  br-demo 172.20.0.1/16, veth-lan 192.168.100.254/24, veth-inet 203.0.113.254/24, ip_forward=1"
echo "ctr:   172.20.0.2/16 on br-demo, default via 172.20.0.1"
echo "lan:   192.168.100.50/24, TCP server on port 5432 (pid ${PIDS[0]})"
echo "inet:  203.0.113.10/24, TCP server on port 80 (pid ${PIDS[1]})"

heading "before dockerfence: ctr reaches everything"
probe "lan database" 192.168.100.50 5432 allowed "$LAN_BANNER"
probe "internet host" 203.0.113.10 80 allowed "$INET_BANNER"
[ "$FAILED" -eq 0 ] || die "the sandbox does not forward before dockerfence runs; not dockerfence's fault"

# The embedded default policy and no Docker: on a machine with its own
# /etc/dockerfence/policy.yaml or a Docker daemon, pass the default policy as a
# file and a Docker address that does not exist, so that the demo stays the same
# and the bridges still come from netlink, inside host.
# The sandbox's status socket and last-apply record live in $TMP, not in
# /run/dockerfence, so a daemon running on this machine is never asked.
DFARGS=(--socket "$TMP/dockerfence.sock")
if [ -e /etc/dockerfence/policy.yaml ]; then
	"$DF" policy default >"$TMP/policy.yaml"
	DFARGS+=(-c "$TMP/policy.yaml")
fi
if [ -n "${DOCKER_HOST:-}" ] || [ -e /var/run/docker.sock ]; then
	DFARGS+=(--docker-host "unix://$TMP/no-docker.sock")
fi

heading "the embedded default policy (its egress rules are egress 1..4 in status)"
run "$DF" policy default

heading "dockerfence apply (inside ${HOST} only)"
run ip netns exec "$HOST" "$DF" apply "${DFARGS[@]}"

heading "dockerfence status"
run ip netns exec "$HOST" "$DF" status "${DFARGS[@]}"

heading "after dockerfence apply: the LAN is fenced off, the internet is not"
probe "lan database" 192.168.100.50 5432 denied "$LAN_BANNER"
probe "internet host" 203.0.113.10 80 allowed "$INET_BANNER"

heading "dockerfence status (the counters now count the denied connection)"
run ip netns exec "$HOST" "$DF" status "${DFARGS[@]}"

heading "dockerfence delete: the only command that un-fences"
run ip netns exec "$HOST" "$DF" delete "${DFARGS[@]}"
probe "lan database" 192.168.100.50 5432 allowed "$LAN_BANNER"

heading "root namespace firewall"
if [ "$(root_table)" = "$root_before" ]; then
	echo "   table inet dockerfence of the root namespace unchanged ($(root_table | head -n1))"
else
	echo "   table inet dockerfence of the root namespace CHANGED during the demo" >&2
	FAILED=$((FAILED + 1))
fi

[ "$FAILED" -eq 0 ] || die "$FAILED result(s) not as expected"
