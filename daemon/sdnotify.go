package daemon

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"

	"github.com/dockerfence/dockerfence/nft"
	"golang.org/x/sys/unix"
)

// sdNotify sends state to systemd's notification socket ($NOTIFY_SOCKET),
// as sd_notify(3) does, with files as file descriptors (SCM_RIGHTS);
// without the variable (not under systemd, or a unit that is not
// Type=notify) it does nothing.
func sdNotify(state string, files ...*os.File) error {
	path := os.Getenv("NOTIFY_SOCKET")
	if path == "" {
		return nil
	}
	// A connected datagram socket cannot send control messages in Go's
	// net package, so this one is raw. x/sys/unix makes a leading "@"
	// the abstract namespace, as systemd means it.
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return os.NewSyscallError("socket", err)
	}
	defer unix.Close(fd)
	var oob []byte
	if len(files) > 0 {
		fds := make([]int, len(files))
		for i, f := range files {
			fds[i] = int(f.Fd())
		}
		oob = unix.UnixRights(fds...)
	}
	if err := unix.Sendmsg(fd, []byte(state), oob, &unix.SockaddrUnix{Name: path}, 0); err != nil {
		return fmt.Errorf("notify %s: %w", path, os.NewSyscallError("sendmsg", err))
	}
	return nil
}

// OwnerFDName is the name under which the daemon keeps its nf_tables
// socket in systemd's file descriptor store (FDNAME=, LISTEN_FDNAMES).
const OwnerFDName = "nft-owner"

// OpenKernel opens the daemon's lasting nf_tables socket, the one that
// owns the table: the socket an earlier daemon left in systemd's file
// descriptor store, when systemd passes it back (sd_listen_fds_with_names
// (3): LISTEN_PID, LISTEN_FDS, LISTEN_FDNAMES), else a new one. Under
// systemd it then hands a copy of the socket to the store (sd_notify
// FDSTORE=1, which the unit allows with FileDescriptorStoreMax=): while
// the store holds the socket, the table stays owned even when the daemon is
// killed or crashes, so "nft flush ruleset" and every other process are
// still refused until the next daemon takes the socket back. It logs what
// it did through log.
func OpenKernel(log *slog.Logger) (*nft.Kernel, error) {
	f, err := listenFile(OwnerFDName)
	if err != nil {
		log.Warn("ignoring the file descriptors systemd passed", "err", err)
	}
	var k *nft.Kernel
	if f != nil {
		k, err = nft.OpenKernel(nft.Options{Socket: f})
		f.Close()
		if err != nil {
			// The stored socket may still own the table, and the store
			// holds one socket: take it out, or the new socket could
			// neither change the table nor be stored.
			log.Warn("the nf_tables socket from systemd's file descriptor store is unusable; removing it from the store and opening a new one", "err", err)
			if err := sdNotify("FDSTOREREMOVE=1\nFDNAME=" + OwnerFDName); err != nil {
				log.Warn("could not remove the unusable socket from systemd's file descriptor store", "err", err)
			}
			k = nil
		} else if p, err := k.Protection(); err == nil {
			log.Info("took back the previous daemon's nf_tables socket from systemd's file descriptor store: the table stayed owned while no daemon ran", "port", p.Port)
		}
	}
	if k == nil {
		if k, err = nft.OpenKernel(nft.Options{}); err != nil {
			return nil, err
		}
	}
	if os.Getenv("NOTIFY_SOCKET") == "" {
		return k, nil
	}
	sf, err := k.SocketFile()
	if err == nil {
		err = sdNotify("FDSTORE=1\nFDNAME="+OwnerFDName, sf)
		sf.Close()
	}
	if err != nil {
		log.Warn("could not hand the nf_tables socket to systemd's file descriptor store: if this daemon is killed, its table is left without an owner, which nft flush ruleset can delete", "err", err)
	} else {
		log.Debug("handed the nf_tables socket to systemd's file descriptor store", "name", OwnerFDName)
	}
	return k, nil
}

// listenFile returns the file descriptor named name among those systemd
// passed to this process (sd_listen_fds_with_names(3)), or nil if there is
// none. It unsets the variables, so that no child takes them for its own,
// and marks every passed descriptor close-on-exec; the others stay open,
// unused.
func listenFile(name string) (*os.File, error) {
	defer func() {
		for _, v := range []string{"LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"} {
			os.Unsetenv(v)
		}
	}()
	const first = 3 // SD_LISTEN_FDS_START
	return listenFileFrom(os.Getenv, first, name)
}

// listenFileFrom is listenFile with the environment read by getenv and the
// passed descriptors starting at first.
func listenFileFrom(getenv func(string) string, first int, name string) (*os.File, error) {
	pid, fds, names := getenv("LISTEN_PID"), getenv("LISTEN_FDS"), getenv("LISTEN_FDNAMES")
	if fds == "" {
		return nil, nil
	}
	if pid != strconv.Itoa(os.Getpid()) {
		return nil, fmt.Errorf("LISTEN_PID=%s is not this process (%d)", pid, os.Getpid())
	}
	n, err := strconv.Atoi(fds)
	if err != nil || n < 0 {
		return nil, fmt.Errorf("LISTEN_FDS=%q is not a count", fds)
	}
	var list []string
	if names != "" {
		list = strings.Split(names, ":")
	}
	var found *os.File
	for i := range n {
		fd := first + i
		unix.CloseOnExec(fd)
		if i < len(list) && list[i] == name && found == nil {
			found = os.NewFile(uintptr(fd), name)
		}
	}
	if found == nil && n > 0 {
		return nil, errors.New("no descriptor named " + name + " among LISTEN_FDNAMES=" + names)
	}
	return found, nil
}
