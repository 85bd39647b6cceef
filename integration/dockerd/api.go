package dockerd

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/pkg/stdcopy"
	"github.com/docker/go-connections/nat"
)

// Label is set on every container that RunContainer creates.
const Label = "dockerfence.test"

// CreateNetwork creates a bridge network called name with the IPv4 subnet
// (e.g. "10.77.0.0/24") and labels, and returns its id and the name of its
// Linux bridge, "br-" followed by the first 12 characters of the id.
func (d *Daemon) CreateNetwork(t testing.TB, name, subnet string, labels map[string]string) (id, bridge string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), apiTimeout)
	defer cancel()
	resp, err := d.Client.NetworkCreate(ctx, name, network.CreateOptions{
		Driver: "bridge",
		IPAM:   &network.IPAM{Config: []network.IPAMConfig{{Subnet: subnet}}},
		Labels: labels,
	})
	if err != nil {
		t.Fatalf("dockerd (%s): create network %s %s: %v", d.Engine.Name, name, subnet, err)
	}
	if len(resp.ID) < 12 {
		t.Fatalf("dockerd (%s): create network %s: bad id %q", d.Engine.Name, name, resp.ID)
	}
	return resp.ID, "br-" + resp.ID[:12]
}

// NetworkOptions are what CreateNetworkWith may give a bridge network:
// subnets of both families, IPv6 (docker network create --ipv6) and labels.
type NetworkOptions struct {
	// Subnets are the network's subnets, e.g. "10.40.0.0/24" and
	// "fd00:40::/64".
	Subnets []string
	// IPv6 enables IPv6 on the network; it needs an IPv6 subnet.
	IPv6   bool
	Labels map[string]string
}

// CreateNetworkWith creates a bridge network called name with o and
// returns its id and the name of its Linux bridge, as CreateNetwork does.
func (d *Daemon) CreateNetworkWith(t testing.TB, name string, o NetworkOptions) (id, bridge string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), apiTimeout)
	defer cancel()
	ipam := &network.IPAM{}
	for _, s := range o.Subnets {
		ipam.Config = append(ipam.Config, network.IPAMConfig{Subnet: s})
	}
	ipv6 := o.IPv6
	resp, err := d.Client.NetworkCreate(ctx, name, network.CreateOptions{
		Driver:     "bridge",
		IPAM:       ipam,
		EnableIPv6: &ipv6,
		Labels:     o.Labels,
	})
	if err != nil {
		t.Fatalf("dockerd (%s): create network %s %v: %v", d.Engine.Name, name, o.Subnets, err)
	}
	if len(resp.ID) < 12 {
		t.Fatalf("dockerd (%s): create network %s: bad id %q", d.Engine.Name, name, resp.ID)
	}
	return resp.ID, "br-" + resp.ID[:12]
}

// RemoveNetwork removes the network name (or id).
func (d *Daemon) RemoveNetwork(t testing.TB, name string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), apiTimeout)
	defer cancel()
	if err := d.Client.NetworkRemove(ctx, name); err != nil {
		t.Fatalf("dockerd (%s): remove network %s: %v", d.Engine.Name, name, err)
	}
}

// RunContainer creates and starts a container called name from Image on
// network, running "sleep 3600", and returns its id. Its stop signal is
// SIGKILL (sleep as pid 1 ignores SIGTERM), so stopping it, or stopping
// dockerd, does not wait for a timeout.
func (d *Daemon) RunContainer(t testing.TB, name, network string) string {
	t.Helper()
	return d.Run(t, name, network, RunOptions{})
}

// RunOptions are what Run may add to a container: labels, a fixed IPv4
// address on its network (docker run --ip) and a command other than
// "sleep 3600".
type RunOptions struct {
	Labels map[string]string
	IPv4   string
	Cmd    []string
	// CapAdd adds capabilities (docker run --cap-add).
	CapAdd []string
	// Publish publishes ports as docker run -p does: "8080:80",
	// "8081:81/tcp", "127.0.0.1:8082:82", "[::1]:8083:83/udp".
	Publish []string
}

// Run creates and starts a container called name on network as
// RunContainer does, with o, and returns its id.
func (d *Daemon) Run(t testing.TB, name, networkName string, o RunOptions) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), apiTimeout)
	defer cancel()
	labels := map[string]string{Label: "1"}
	for k, v := range o.Labels {
		labels[k] = v
	}
	cmd := o.Cmd
	if cmd == nil {
		cmd = []string{"sleep", "3600"}
	}
	var nc *network.NetworkingConfig
	if o.IPv4 != "" {
		nc = &network.NetworkingConfig{EndpointsConfig: map[string]*network.EndpointSettings{
			networkName: {IPAMConfig: &network.EndpointIPAMConfig{IPv4Address: o.IPv4}},
		}}
	}
	exposed, bindings, err := nat.ParsePortSpecs(o.Publish)
	if err != nil {
		t.Fatalf("dockerd: container %s: publish %q: %v", name, o.Publish, err)
	}
	resp, err := d.Client.ContainerCreate(ctx,
		&container.Config{
			Image:        Image,
			Cmd:          cmd,
			StopSignal:   "SIGKILL",
			Labels:       labels,
			ExposedPorts: exposed,
		},
		&container.HostConfig{NetworkMode: container.NetworkMode(networkName), CapAdd: o.CapAdd, PortBindings: bindings},
		nc, nil, name)
	if err != nil {
		t.Fatalf("dockerd (%s): create container %s on %s: %v", d.Engine.Name, name, networkName, err)
	}
	if err := d.Client.ContainerStart(ctx, resp.ID, container.StartOptions{}); err != nil {
		t.Fatalf("dockerd (%s): start container %s: %v\n%s", d.Engine.Name, name, err, d.logTail("dockerd.log"))
	}
	return resp.ID
}

// RemoveContainer force-removes the container name (or id), running or not.
func (d *Daemon) RemoveContainer(t testing.TB, name string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), apiTimeout)
	defer cancel()
	if err := d.Client.ContainerRemove(ctx, name, container.RemoveOptions{Force: true, RemoveVolumes: true}); err != nil {
		t.Fatalf("dockerd (%s): remove container %s: %v", d.Engine.Name, name, err)
	}
}

// Exec runs cmd in the running container (name or id), like "docker exec",
// and returns its exit code and its output, stdout then stderr. It fails the
// test only if the command cannot be run.
func (d *Daemon) Exec(t testing.TB, container string, cmd ...string) (exitCode int, output string) {
	t.Helper()
	code, out, err := d.exec(container, cmd, apiTimeout)
	if err != nil {
		t.Fatalf("dockerd (%s): exec %q in %s: %v", d.Engine.Name, cmd, container, err)
	}
	return code, out
}

func (d *Daemon) exec(ctr string, cmd []string, timeout time.Duration) (int, string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	ex, err := d.Client.ContainerExecCreate(ctx, ctr, container.ExecOptions{Cmd: cmd, AttachStdout: true, AttachStderr: true})
	if err != nil {
		return 0, "", err
	}
	att, err := d.Client.ContainerExecAttach(ctx, ex.ID, container.ExecAttachOptions{})
	if err != nil {
		return 0, "", err
	}
	defer att.Close()
	var stdout, stderr bytes.Buffer
	if _, err := stdcopy.StdCopy(&stdout, &stderr, att.Reader); err != nil {
		return 0, "", fmt.Errorf("read output: %w", err)
	}
	// The exit code may lag a little behind the end of the output.
	for {
		ins, err := d.Client.ContainerExecInspect(ctx, ex.ID)
		if err != nil {
			return 0, "", err
		}
		if !ins.Running {
			return ins.ExitCode, stdout.String() + stderr.String(), nil
		}
		select {
		case <-ctx.Done():
			return 0, "", fmt.Errorf("exec still running: %w", ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// TCP connects from inside the container to addr ("host:port", IPv6 in
// brackets) with busybox nc and reports "ok", "refused" (reset, or an ICMP
// error such as admin-prohibited or unreachable) or "timeout" (no answer
// within timeout, rounded up to whole seconds). Anything else is returned as
// nc's output. Only the connection is tested: nc runs "true" as soon as it
// is connected, so the server's behaviour afterwards does not matter.
//
// As with topo.NS.DialTCP, an ICMP reject may only be noticed on the first
// SYN retransmission after about a second: use a timeout of at least 2s
// where a reject is expected.
func (d *Daemon) TCP(t testing.TB, container, addr string, timeout time.Duration) string {
	t.Helper()
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatalf("dockerd: TCP probe: %v", err)
	}
	secs := int(math.Ceil(timeout.Seconds()))
	if secs < 1 {
		secs = 1
	}
	code, out, err := d.exec(container, []string{"nc", "-w", fmt.Sprint(secs), host, port, "-e", "true"}, time.Duration(secs)*time.Second+apiTimeout)
	if err != nil {
		t.Fatalf("dockerd (%s): TCP probe %s from %s: %v", d.Engine.Name, addr, container, err)
	}
	return ClassifyNC(code, out)
}

// ClassifyNC maps the exit code and output of busybox nc (as verified with
// busybox 1.35) to "ok", "refused" or "timeout".
func ClassifyNC(code int, out string) string {
	out = strings.TrimSpace(out)
	if code == 0 {
		return "ok"
	}
	switch {
	case strings.HasSuffix(out, "timed out"):
		return "timeout"
	case strings.Contains(out, "can't connect"):
		for _, refused := range []string{
			"Connection refused", "Connection reset by peer", // TCP reset
			"No route to host", "Network is unreachable", // ICMP unreachable
			"Permission denied", "Operation not permitted", // ICMP admin prohibited
		} {
			if strings.HasSuffix(out, refused) {
				return "refused"
			}
		}
	}
	return fmt.Sprintf("nc exit %d: %s", code, out)
}

// WithIPv6 returns e with the daemon flags that IPv6 networks with
// published ports need: --ipv6 with fixedCIDRv6 for the default bridge and
// --ip6tables, so that Docker DNATs IPv6 connections to published ports
// (without it, Docker 20.10 leaves them to docker-proxy, which connects to
// the container from the host itself). Docker 20.10 has --ip6tables only
// with --experimental; from Docker 27 on it is the default.
func (e Engine) WithIPv6(fixedCIDRv6 string) Engine {
	args := append([]string(nil), e.Args...)
	args = append(args, "--ipv6", "--fixed-cidr-v6", fixedCIDRv6, "--ip6tables")
	if e.Name == "debian" {
		args = append(args, "--experimental")
	}
	e.Args = args
	return e
}

// WithDNS returns e with --dns for each of servers: the containers'
// resolv.conf then names Docker's embedded resolver (127.0.0.11) on
// user-defined networks, which forwards their queries to servers from
// inside the container's network namespace, so the answers come back to
// the container through the host's forward hook. Without it, dockerd
// takes the servers of the host's /etc/resolv.conf.
func (e Engine) WithDNS(servers ...string) Engine {
	args := append([]string(nil), e.Args...)
	for _, s := range servers {
		args = append(args, "--dns", s)
	}
	e.Args = args
	return e
}

// EchoServer is the command of a container that serves TCP on each of
// ports: to each connection it says "hello", notes it in
// /tmp/accepted.PORT (one line a connection, read by Accepted) and echoes
// what it receives, one process a connection, many at once.
func EchoServer(ports ...int) []string {
	var script strings.Builder
	for _, p := range ports {
		fmt.Fprintf(&script, "nc -ll -p %d -e sh -c 'echo x >> /tmp/accepted.%d; echo hello; exec cat' & ", p, p)
	}
	script.WriteString("wait")
	return []string{"sh", "-c", script.String()}
}

// Accepted returns how many connections the EchoServer of the container
// accepted on port so far.
func (d *Daemon) Accepted(t testing.TB, container string, port int) int {
	t.Helper()
	f := fmt.Sprintf("/tmp/accepted.%d", port)
	code, out := d.Exec(t, container, "sh", "-c", "touch "+f+"; wc -l < "+f)
	var n int
	if _, err := fmt.Sscan(out, &n); code != 0 || err != nil {
		t.Fatalf("dockerd (%s): count the connections %s accepted on %d: exit %d: %q", d.Engine.Name, container, port, code, out)
	}
	return n
}
