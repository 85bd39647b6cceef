package nft

import (
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/mdlayher/netlink"
	"github.com/mdlayher/netlink/nltest"
	"golang.org/x/sys/unix"
)

// fakeKernel stands in for the kernel through the testDial seam for the
// duration of the test.
func fakeKernel(t *testing.T, fn nltest.Func) {
	t.Helper()
	testDial = fn
	t.Cleanup(func() { testDial = nil })
}

// msgType returns the nf_tables message type of a request (NFT_MSG_*), or
// -1 for a batch.
func reqType(m netlink.Message) int {
	if m.Header.Type == netlink.HeaderType(unix.NFNL_MSG_BATCH_BEGIN) {
		return -1
	}
	return int(m.Header.Type & 0xff)
}

// withoutNFTables answers as nfnetlink does in a kernel without the nf_tables
// subsystem: EINVAL to a request, EOPNOTSUPP to a batch.
func withoutNFTables(reqs []netlink.Message) ([]netlink.Message, error) {
	if len(reqs) == 0 {
		return nil, nil
	}
	if reqType(reqs[0]) == -1 {
		return nltest.Error(int(unix.EOPNOTSUPP), reqs)
	}
	return nltest.Error(int(unix.EINVAL), reqs)
}

// everyRequest answers every request with errno, as the kernel answers a
// process without CAP_NET_ADMIN (EPERM).
func everyRequest(errno unix.Errno) nltest.Func {
	return func(reqs []netlink.Message) ([]netlink.Message, error) {
		if len(reqs) == 0 {
			return nil, nil
		}
		return nltest.Error(int(errno), reqs)
	}
}

// noSocket fails as a kernel without nfnetlink does, where the socket
// cannot even be opened.
func noSocket(reqs []netlink.Message) ([]netlink.Message, error) {
	return nil, os.NewSyscallError("socket", unix.EPROTONOSUPPORT)
}

// gettableInvalid refuses the table request with EINVAL but answers the
// generation request as a kernel with nf_tables does: a kernel that has
// nf_tables but found a request wrong.
func gettableInvalid(reqs []netlink.Message) ([]netlink.Message, error) {
	if len(reqs) == 0 {
		return nil, nil
	}
	if reqType(reqs[0]) == unix.NFT_MSG_GETGEN {
		r := reqs[0]
		r.Header.Type = netlink.HeaderType(unix.NFNL_SUBSYS_NFTABLES<<8 | unix.NFT_MSG_NEWGEN)
		r.Data = []byte{unix.AF_UNSPEC, unix.NFNETLINK_V0, 0, 0}
		return []netlink.Message{r}, nil
	}
	return nltest.Error(int(unix.EINVAL), reqs)
}

// TestKernelRefusalsSayWhatToDo plays kernels that refuse dockerfence
// through the testDial seam and checks that every command's first kernel
// call fails with the errno and one line that says how to fix it.
func TestKernelRefusalsSayWhatToDo(t *testing.T) {
	table := &Table{Name: "dockerfence", Priority: -10, Chains: []*Chain{{Name: "forward", Hook: HookForward}}}
	tests := []struct {
		name   string
		kernel nltest.Func
		errno  unix.Errno
		want   string
		not    string
	}{
		{name: "no CAP_NET_ADMIN", kernel: everyRequest(unix.EPERM), errno: unix.EPERM,
			want: "nftables needs CAP_NET_ADMIN in this network namespace: run as root (sudo), or grant the capability"},
		{name: "no nfnetlink", kernel: noSocket, errno: unix.EPROTONOSUPPORT,
			want: "this kernel has no nf_tables: load the module (modprobe nf_tables) or use a kernel built with CONFIG_NF_TABLES"},
		{name: "nfnetlink without nf_tables", kernel: withoutNFTables, errno: unix.EINVAL,
			want: "this kernel has no nf_tables: load the module (modprobe nf_tables) or use a kernel built with CONFIG_NF_TABLES"},
		{name: "EINVAL from a kernel with nf_tables", kernel: gettableInvalid, errno: unix.EINVAL,
			not: "nf_tables"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fakeKernel(t, tc.kernel)
			k := Kernel{}
			calls := map[string]func() error{
				"Read":  func() error { _, err := k.Read(table.Name); return err },
				"Apply": func() error { _, err := k.Apply(table); return err },
				"Delete": func() error {
					_, err := k.Delete(table.Name)
					return err
				},
			}
			for name, call := range calls {
				err := call()
				if err == nil {
					t.Fatalf("%s: no error", name)
				}
				msg := err.Error()
				// Delete, too, reads which tables there are first.
				errno := tc.errno
				if !errors.Is(err, errno) {
					t.Errorf("%s: error %q is not %v", name, msg, errno)
				}
				if strings.Contains(msg, "\n") {
					t.Errorf("%s: error is not one line: %q", name, msg)
				}
				if tc.want != "" && !strings.Contains(msg, tc.want) {
					t.Errorf("%s: error %q does not say %q", name, msg, tc.want)
				}
				if tc.not != "" && strings.Contains(msg, tc.not) {
					t.Errorf("%s: error %q says %q, but the kernel has it", name, msg, tc.not)
				}
			}
		})
	}
}
