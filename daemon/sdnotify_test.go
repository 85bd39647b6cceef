package daemon

import (
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestSDNotify(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", "")
	if err := sdNotify("READY=1"); err != nil {
		t.Errorf("sdNotify without NOTIFY_SOCKET = %v, want nil (nothing to tell)", err)
	}
	for _, tc := range []struct{ name, env string }{
		{"path", filepath.Join(t.TempDir(), "notify")},
		{"abstract", "@dockerfence-test-" + time.Now().Format("150405.000000000")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			name := tc.env
			if name[0] == '@' {
				name = "\x00" + name[1:]
			}
			c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: name, Net: "unixgram"})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			t.Setenv("NOTIFY_SOCKET", tc.env)
			if err := sdNotify("READY=1"); err != nil {
				t.Fatal(err)
			}
			c.SetReadDeadline(time.Now().Add(5 * time.Second))
			b := make([]byte, 64)
			n, err := c.Read(b)
			if err != nil || string(b[:n]) != "READY=1" {
				t.Errorf("systemd got %q, %v; want READY=1", b[:n], err)
			}
		})
	}
	t.Setenv("NOTIFY_SOCKET", filepath.Join(t.TempDir(), "nobody"))
	if err := sdNotify("READY=1"); err == nil {
		t.Error("sdNotify to a socket nobody listens on = nil, want an error")
	}
}

// TestSDNotifyFDStore hands a pipe to a notification socket as
// FDSTORE=1 does, and requires that the descriptor arrives and is the
// same pipe.
func TestSDNotifyFDStore(t *testing.T) {
	path := filepath.Join(t.TempDir(), "notify")
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	t.Setenv("NOTIFY_SOCKET", path)
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	if err := sdNotify("FDSTORE=1\nFDNAME="+OwnerFDName, w); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	b, oob := make([]byte, 64), make([]byte, unix.CmsgSpace(4))
	n, oobn, _, _, err := c.ReadMsgUnix(b, oob)
	if err != nil {
		t.Fatal(err)
	}
	if string(b[:n]) != "FDSTORE=1\nFDNAME=nft-owner" {
		t.Errorf("state = %q", b[:n])
	}
	msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
	if err != nil || len(msgs) != 1 {
		t.Fatalf("control messages: %v, %v", msgs, err)
	}
	fds, err := unix.ParseUnixRights(&msgs[0])
	if err != nil || len(fds) != 1 {
		t.Fatalf("rights: %v, %v", fds, err)
	}
	got := os.NewFile(uintptr(fds[0]), "stored")
	defer got.Close()
	if _, err := got.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	one := make([]byte, 1)
	if _, err := r.Read(one); err != nil || one[0] != 'x' {
		t.Errorf("the stored descriptor is not the pipe: read %q, %v", one, err)
	}
}

// TestListenFile reads the descriptors systemd passes as
// sd_listen_fds_with_names(3) describes them, with a pipe in place of the
// stored socket.
func TestListenFile(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	self := strconv.Itoa(os.Getpid())
	for _, tc := range []struct {
		name           string
		env            map[string]string
		wantFD, errHas string
	}{
		{"none passed", map[string]string{}, "", ""},
		{"ours", map[string]string{"LISTEN_PID": self, "LISTEN_FDS": "1", "LISTEN_FDNAMES": OwnerFDName}, "yes", ""},
		{"another process's", map[string]string{"LISTEN_PID": "1", "LISTEN_FDS": "1", "LISTEN_FDNAMES": OwnerFDName}, "", "is not this process"},
		{"another name", map[string]string{"LISTEN_PID": self, "LISTEN_FDS": "1", "LISTEN_FDNAMES": "other"}, "", "no descriptor named nft-owner"},
		{"no count", map[string]string{"LISTEN_PID": self, "LISTEN_FDS": "x"}, "", "is not a count"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// The file listenFileFrom returns owns its descriptor (and
			// closes it when collected): give it a duplicate of the pipe.
			first, err := unix.Dup(int(r.Fd()))
			if err != nil {
				t.Fatal(err)
			}
			f, err := listenFileFrom(func(k string) string { return tc.env[k] }, first, OwnerFDName)
			if tc.errHas != "" {
				unix.Close(first)
				if err == nil || !strings.Contains(err.Error(), tc.errHas) {
					t.Errorf("err = %v; want one containing %q", err, tc.errHas)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if f == nil {
				unix.Close(first)
			} else {
				defer f.Close()
			}
			if (f != nil) != (tc.wantFD != "") {
				t.Fatalf("file = %v; want one: %v", f, tc.wantFD != "")
			}
			if f != nil && int(f.Fd()) != first {
				t.Errorf("fd = %d; want %d", f.Fd(), first)
			}
		})
	}
}
