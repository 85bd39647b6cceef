package daemon

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/dockerfence/dockerfence/bridge"
	"github.com/dockerfence/dockerfence/denylog"
	"github.com/dockerfence/dockerfence/fence"
	"github.com/dockerfence/dockerfence/nflog"
	"github.com/dockerfence/dockerfence/nft"
	"github.com/dockerfence/dockerfence/policy"
	"github.com/dockerfence/dockerfence/status"
	"golang.org/x/sys/unix"
)

// lockedBuffer is a log that the test reads while the daemon writes it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// chanSource is an NFLOG group whose packets the test sends.
type chanSource struct {
	group  uint16
	pkts   chan []nflog.Packet
	closed chan struct{}
	once   sync.Once
}

func newChanSource(group uint16) *chanSource {
	return &chanSource{group: group, pkts: make(chan []nflog.Packet), closed: make(chan struct{})}
}

func (s *chanSource) Receive() ([]nflog.Packet, error) {
	select {
	case p := <-s.pkts:
		return p, nil
	case <-s.closed:
		return nil, errors.New("closed")
	}
}

func (s *chanSource) Close() error {
	s.once.Do(func() { close(s.closed) })
	return nil
}

const servedPolicy = `version: 1
settings: {log_group: GROUP}
networks:
  - match: {bridge: br-app}
    egress:
      - deny: 192.168.0.0/16
        comment: LAN
`

// Serve runs the daemon with everything dockerfence run serves around it:
// the socket API, the metrics, the denials of the policy's NFLOG group, the
// record of the last apply, and systemd's notification.
func TestServe(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "run", "dockerfence.sock")
	notify, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: filepath.Join(dir, "notify"), Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer notify.Close()
	t.Setenv("NOTIFY_SOCKET", filepath.Join(dir, "notify"))

	var pmu sync.Mutex
	group := "7"
	reload := make(chan os.Signal, 1)
	opened := make(chan *chanSource, 4)
	synced := make(chan Result, 16)
	readies := 0
	var log lockedBuffer
	cfg := Config{
		LoadPolicy: func() (*policy.Policy, error) {
			pmu.Lock()
			defer pmu.Unlock()
			return policy.Parse("p.yaml", []byte(strings.Replace(servedPolicy, "GROUP", group, 1)), policy.Options{ResolvConf: os.DevNull})
		},
		Reload: reload,
		Bridges: func() ([]bridge.Bridge, error) {
			return []bridge.Bridge{{Name: "br-app", Index: 5, Subnets: []netip.Prefix{netip.MustParsePrefix("172.20.0.0/16")}}}, nil
		},
		Kernel: &fakeKernel{watch: make(chan nft.Change), watchErr: make(chan error)},
		Log:    slog.New(slog.NewTextHandler(&log, nil)),
		Resync: time.Hour,
		OnSync: func(r Result) { synced <- r },
		Ready:  func() { readies++ },
	}
	s := Services{Socket: sock, MetricsAddr: "127.0.0.1:0", RunDir: filepath.Dir(sock), Version: "v0-test",
		OpenLog: func(g uint16) (denylog.Source, error) {
			src := newChanSource(g)
			opened <- src
			return src, nil
		}}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, cfg, s) }()

	if r := <-synced; r.Err != nil || !r.Changed {
		t.Fatalf("first sync = %+v, want the table applied", r)
	}
	src := <-opened
	if src.group != 7 {
		t.Errorf("NFLOG group opened = %d, want settings.log_group 7", src.group)
	}
	notify.SetReadDeadline(time.Now().Add(5 * time.Second))
	b := make([]byte, 64)
	if n, err := notify.Read(b); err != nil || string(b[:n]) != "READY=1" {
		t.Errorf("systemd was told %q, %v; want READY=1", b[:n], err)
	}

	st, err := GetStatus(ctx, sock)
	if err != nil || st.Daemon == nil || len(st.Networks) != 1 || st.Networks[0].Bridge != "br-app" {
		t.Errorf("status on the socket = %+v, %v; want the daemon's, with br-app fenced", st, err)
	}
	// (The fake kernel reads back only the table's chains: differs.)
	if st.State != status.StateDiffers || st.ExitCode != status.ExitDiffers {
		t.Errorf("status on the socket says %q, exit code %d; want differs, 4", st.State, st.ExitCode)
	}
	if a, err := Ask(ctx, sock, RequestPlan, ""); err != nil || a.Pending == nil || !*a.Pending || !strings.Contains(a.Output, "apply would change") {
		t.Errorf("plan on the socket = %+v, %v; want changes pending, and the header saying so", a, err)
	}
	if a, err := status.LoadLastApply(s.RunDir, "dockerfence"); err != nil || a == nil || a.By != "run" || a.Result != "applied" {
		t.Errorf("last apply recorded = %+v, %v; want the daemon's first sync", a, err)
	}

	// A denial is attributed with the table in force, kept for logs and
	// counted in the metrics.
	src.pkts <- []nflog.Packet{{Prefix: "df fwd_br-app.e1 ", Family: unix.NFPROTO_IPV4}}
	var events []denylog.Event
	for deadline := time.Now().Add(5 * time.Second); len(events) == 0 && time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if err := Events(ctx, sock, false, collect(&events)); err != nil {
			t.Fatal(err)
		}
	}
	if len(events) != 1 || events[0].Rule != "egress 1" || events[0].Comment != "LAN" || events[0].Bridge != "br-app" {
		t.Errorf("events on the socket = %+v, want the denial by egress 1", events)
	}
	url := regexp.MustCompile(`msg="serving metrics" url=(\S+)`).FindStringSubmatch(log.String())
	if url == nil {
		t.Fatalf("no metrics URL in the log:\n%s", log.String())
	}
	resp, err := http.Get(url[1])
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), `dockerfence_denial_events_total{network="br-app",rule="egress 1"} 1`) {
		t.Errorf("metrics lack the denial:\n%s", body)
	}

	// A reload that changes the group reads the new one.
	pmu.Lock()
	group = "8"
	pmu.Unlock()
	reload <- unix.SIGHUP
	if next := <-opened; next.group != 8 {
		t.Errorf("NFLOG group after the reload = %d, want 8", next.group)
	}
	select {
	case <-src.closed:
	case <-time.After(5 * time.Second):
		t.Error("the old group was not closed")
	}

	cancel()
	if err := <-done; err != nil {
		t.Errorf("Serve after cancel = %v, want nil", err)
	}
	if _, err := os.Stat(sock); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("socket after Serve returned: %v, want it removed", err)
	}
	if readies != 1 {
		t.Errorf("Config.Ready called %d times, want once", readies)
	}
	for _, msg := range []string{
		`level=INFO msg="serving status and denial events" socket=` + sock,
		`level=INFO msg="reading denials" nflog_group=7`,
		`level=INFO msg="reading denials" nflog_group=8`,
		`level=INFO msg="dockerfence run starting" version=v0-test`,
		`level=INFO msg="policy loaded" policy=p.yaml` + "\n",
	} {
		if !strings.Contains(log.String(), msg) {
			t.Errorf("log lacks %s:\n%s", msg, log.String())
		}
	}
}

// Serve fails at once, and says so, when it cannot listen.
func TestServeCannotListen(t *testing.T) {
	dir := t.TempDir()
	plain := filepath.Join(dir, "plain")
	os.WriteFile(plain, nil, 0o600)
	cfg := Config{Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Kernel: &fakeKernel{}}
	if err := Serve(context.Background(), cfg, Services{Socket: plain, RunDir: dir, OpenLog: func(uint16) (denylog.Source, error) { return nil, errors.New("no") }}); err == nil || !strings.Contains(err.Error(), "is not a socket") {
		t.Errorf("Serve on a plain file = %v, want the socket refused", err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	err = Serve(context.Background(), cfg, Services{Socket: filepath.Join(dir, "df.sock"), MetricsAddr: l.Addr().String(), RunDir: dir})
	if err == nil || !strings.HasPrefix(err.Error(), "--metrics-addr "+l.Addr().String()+": ") {
		t.Errorf("Serve with a metrics address in use = %v, want it named", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "df.sock")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("socket after Serve failed: %v, want it removed", err)
	}
}

// readDenials binds the group the syncs name, rebinds when it changes, and
// retries every 5 s while the group cannot be bound.
func TestReadDenials(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var log lockedBuffer
		groups := make(chan uint16, 1)
		opened := make(chan *chanSource, 4)
		busy := 1
		open := func(g uint16) (denylog.Source, error) {
			if busy > 0 {
				busy--
				return nil, nflog.ErrBusy
			}
			src := newChanSource(g)
			opened <- src
			return src, nil
		}
		r := &denylog.Reader{Table: func() *fence.Result { return nil }, Publish: func(denylog.Event) {}}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() {
			readDenials(ctx, slog.New(slog.NewTextHandler(&log, nil)), groups, open, r)
			close(done)
		}()
		groups <- 100
		synctest.Wait()
		if !strings.Contains(log.String(), `level=WARN msg="cannot read denials; retrying in 5s (the fence itself is not affected)" group=100`) {
			t.Errorf("log after a busy group:\n%s", log.String())
		}
		start := time.Now()
		src := <-opened
		if src.group != 100 || time.Since(start) != 5*time.Second {
			t.Errorf("bound group %d after %v, want 100 after 5s", src.group, time.Since(start))
		}
		groups <- 101
		next := <-opened
		synctest.Wait()
		select {
		case <-src.closed:
		default:
			t.Error("group 100 still open after the switch to 101")
		}
		if next.group != 101 {
			t.Errorf("bound group %d, want 101", next.group)
		}
		cancel()
		<-done
		select {
		case <-next.closed:
		default:
			t.Error("group 101 still open after ctx ended")
		}
	})
}
