// Package integration proves dockerfence in network namespaces with real
// packets. The tests need root (CI runs them as root) and the nft and
// iptables commands, which they use only to inspect and to play Docker.
package integration

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/dockerfence/dockerfence/integration/harness"
	"github.com/dockerfence/dockerfence/integration/topo"
)

// binary is the dockerfence binary built once for the whole package.
var binary string

func TestMain(m *testing.M) {
	if os.Getenv(ownerHelperEnv) != "" {
		os.Exit(ownerHelper())
	}
	code := func() int {
		if os.Geteuid() != 0 {
			return m.Run() // every test skips with "needs root"
		}
		dir, err := os.MkdirTemp("", "dockerfence-it-")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer os.RemoveAll(dir)
		binary = filepath.Join(dir, "dockerfence")
		out, err := exec.Command("go", "build", "-o", binary, "../cmd/dockerfence").CombinedOutput()
		if err != nil {
			fmt.Fprintf(os.Stderr, "build dockerfence: %v\n%s", err, out)
			return 1
		}
		return m.Run()
	}()
	os.Exit(code)
}

// env is one test's topology plus its files.
type env struct {
	t          *testing.T
	tp         *topo.Topo
	dir        string
	resolvConf string
}

func newEnv(t *testing.T) *env {
	t.Helper()
	tp := topo.New(t)
	for _, tool := range []string{"nft", "iptables", "nsenter"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is needed (apt-get install nftables iptables util-linux): %v", tool, err)
		}
	}
	e := &env{t: t, tp: tp, dir: t.TempDir()}
	e.resolvConf = e.write("resolv.conf", "nameserver "+topo.LANDNS4+"\nnameserver "+topo.LANDNS6+"\n")
	return e
}

func (e *env) write(name, content string) string {
	e.t.Helper()
	p := filepath.Join(e.dir, name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		e.t.Fatal(err)
	}
	return p
}

// dfCmd returns, not started, the command that runs the dockerfence binary
// inside the Host namespace as root with the test's files. Docker is never
// reachable there unless a test says so (the last --docker-host given wins).
func (e *env) dfCmd(args ...string) *exec.Cmd {
	full := append([]string{"--resolv-conf", e.resolvConf, "--socket", e.socket(), "--docker-host", "unix://" + filepath.Join(e.dir, "no-docker.sock")}, args...)
	return e.tp.Host.Command(binary, full...)
}

// df runs dfCmd and returns its combined output.
func (e *env) df(args ...string) (string, error) {
	out, err := e.dfCmd(args...).CombinedOutput()
	return string(out), err
}

// dfStdout runs dfCmd and returns its standard output and standard error
// apart.
func (e *env) dfStdout(args ...string) (stdout, stderr string, err error) {
	cmd := e.dfCmd(args...)
	var out, errOut strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err = cmd.Run()
	return out.String(), errOut.String(), err
}

// socket is the path of the test's dockerfence run socket; the last apply
// is recorded next to it, never in /run/dockerfence.
func (e *env) socket() string { return filepath.Join(e.dir, "df.sock") }

// mustDF is df that fails the test on error.
func (e *env) mustDF(args ...string) string {
	e.t.Helper()
	out, err := e.df(args...)
	if err != nil {
		e.t.Fatalf("dockerfence %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// table lists dockerfence's table in Host without counters ("" if absent),
// and without the elements of the denial log's meters (see withoutMeters).
func (e *env) table() string {
	out, err := e.tp.Host.Try("nft", "-s", "list", "table", "inet", "dockerfence")
	if err != nil {
		return ""
	}
	return withoutMeters(out)
}

// meterElements matches the elements of the denial log's meter sets in an
// nft listing.
var meterElements = regexp.MustCompile(`(\tset log_[46] \{[^}]*?)\n\t+elements = \{[^}]*\}`)

// withoutMeters drops the elements of the denial log's meters from a
// listing of the table: the kernel adds them as it logs denials, and they
// list with the time left until they expire, so two listings of a table
// nobody changed differ while denials are logged.
func withoutMeters(listing string) string { return meterElements.ReplaceAllString(listing, "$1") }

const dialTimeout = 2 * time.Second

// tcpOutcome connects from ns and reports "ok" (the server's greeting
// came), "refused" or "timeout": harness.TCPOutcome within dialTimeout.
func tcpOutcome(ns *topo.NS, addr string) string {
	return harness.TCPOutcome(ns, addr, dialTimeout)
}

// udpOutcome sends one datagram from ns and reports "ok" (an echo came) or "no answer".
func udpOutcome(t *testing.T, ns *topo.NS, addr string) string {
	ok, err := ns.UDPExchange(addr, []byte("ping"), dialTimeout)
	switch {
	case ok:
		return "ok"
	case err != nil && topo.IsRefused(err):
		return "refused"
	case err != nil:
		return err.Error()
	}
	return "no answer"
}

func hostPort(addr string, port int) string { return net.JoinHostPort(addr, fmt.Sprint(port)) }

// expect checks a table of probes.
type probe struct {
	name, proto, addr, want string
}

func (e *env) expect(ns *topo.NS, probes []probe) {
	e.t.Helper()
	for _, p := range probes {
		var got string
		if p.proto == "udp" {
			got = udpOutcome(e.t, ns, p.addr)
		} else {
			got = tcpOutcome(ns, p.addr)
		}
		if got != p.want {
			e.t.Errorf("%s: %s %s: got %s, want %s", p.name, p.proto, p.addr, got, p.want)
		}
	}
}

// refused runs nft with args in Host and fails the test unless the kernel
// refuses it with EPERM: the daemon's socket owns the table, and no other
// process may change it.
func (e *env) refused(t *testing.T, args ...string) {
	t.Helper()
	out, err := e.tp.Host.Try("nft", args...)
	if err == nil || !strings.Contains(out, "Operation not permitted") {
		t.Fatalf("nft %s: %v, want the kernel to refuse it (the daemon owns the table):\n%s", strings.Join(args, " "), err, out)
	}
	if e.table() == "" {
		t.Fatalf("nft %s was refused, yet the table is gone", strings.Join(args, " "))
	}
}
