package dockerd

// What a daemon leaves on the host outside its network namespace, found and
// removed by cleanup: processes, cgroups, mounts and shared directories.

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// ProcsMentioning returns the pids of the processes whose command line
// contains s, except the calling process.
func ProcsMentioning(s string) []int {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var pids []int
	for _, e := range ents {
		var pid int
		if _, err := fmt.Sscanf(e.Name(), "%d", &pid); err != nil || pid == os.Getpid() {
			continue
		}
		cmdline, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if err != nil || len(cmdline) == 0 {
			continue // gone, or a zombie or kernel thread
		}
		if bytes.Contains(cmdline, []byte(s)) {
			pids = append(pids, pid)
		}
	}
	return pids
}

func waitGone(list func() []int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		left := list()
		if len(left) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("processes still alive after SIGKILL: %v", left)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// cgroupMounts returns the mount points of the cgroup (v1) and cgroup2
// hierarchies.
func cgroupMounts() []string {
	var dirs []string
	for _, m := range mountInfo() {
		if m.fstype == "cgroup" || m.fstype == "cgroup2" {
			dirs = append(dirs, m.point)
		}
	}
	return dirs
}

// cgroupPids returns the pids in the cgroup parent and below, in any
// hierarchy.
func cgroupPids(parent string) []int {
	var pids []int
	for _, mnt := range cgroupMounts() {
		filepath.WalkDir(filepath.Join(mnt, parent), func(path string, e os.DirEntry, err error) error {
			if err != nil || !e.IsDir() {
				return nil
			}
			b, err := os.ReadFile(filepath.Join(path, "cgroup.procs"))
			if err != nil {
				return nil
			}
			for _, f := range strings.Fields(string(b)) {
				var pid int
				if _, err := fmt.Sscanf(f, "%d", &pid); err == nil {
					pids = append(pids, pid)
				}
			}
			return nil
		})
	}
	return pids
}

// removeCgroups removes the cgroup parent and its children in every
// hierarchy; they must be empty of processes.
func removeCgroups(parent string) []error {
	var errs []error
	for _, mnt := range cgroupMounts() {
		var dirs []string
		filepath.WalkDir(filepath.Join(mnt, parent), func(path string, e os.DirEntry, err error) error {
			if err == nil && e.IsDir() {
				dirs = append(dirs, path)
			}
			return nil
		})
		for i := len(dirs) - 1; i >= 0; i-- { // children first
			if err := unix.Rmdir(dirs[i]); err != nil && !errors.Is(err, unix.ENOENT) {
				errs = append(errs, fmt.Errorf("rmdir cgroup %s: %w", dirs[i], err))
			}
		}
	}
	return errs
}

type mount struct{ point, fstype string }

// mountInfo parses /proc/self/mountinfo.
func mountInfo() []mount {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil
	}
	var ms []mount
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 10 {
			continue
		}
		sep := -1
		for i := 6; i < len(f); i++ {
			if f[i] == "-" {
				sep = i
				break
			}
		}
		if sep < 0 || sep+1 >= len(f) {
			continue
		}
		ms = append(ms, mount{point: unescapeMount(f[4]), fstype: f[sep+1]})
	}
	return ms
}

// unescapeMount undoes the octal escapes (\040 etc.) of mountinfo.
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			var v int
			if _, err := fmt.Sscanf(s[i+1:i+4], "%o", &v); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// MountsBelow returns the mount points at or below dir, deepest first.
func MountsBelow(dir string) []string {
	var points []string
	for _, m := range mountInfo() {
		if m.point == dir || strings.HasPrefix(m.point, dir+"/") {
			points = append(points, m.point)
		}
	}
	// mountinfo lists parents before children; unmount in reverse.
	for i, j := 0, len(points)-1; i < j; i, j = i+1, j-1 {
		points[i], points[j] = points[j], points[i]
	}
	return points
}

// unmountBelow unmounts everything at or below dir.
func unmountBelow(dir string) []error {
	var errs []error
	for range 5 { // stacked mounts need several rounds
		points := MountsBelow(dir)
		if len(points) == 0 {
			return nil
		}
		errs = errs[:0]
		for _, p := range points {
			if err := unix.Unmount(p, 0); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
				if err := unix.Unmount(p, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
					errs = append(errs, fmt.Errorf("unmount %s: %w", p, err))
				}
			}
		}
	}
	if left := MountsBelow(dir); len(left) > 0 {
		errs = append(errs, fmt.Errorf("still mounted: %v", left))
	}
	return errs
}

// sharedDirs are directories that engines create whatever their
// configuration says: containerd (1.x and 2.x) puts its shims' sockets in
// /run/containerd/s, and dockerd its plugins' state in /run/docker/plugins.
// Those that did not exist before the first daemon of the process started
// are removed, children first and only if empty, after the last daemon is
// cleaned up.
var sharedDirs = []string{"/run/containerd/s", "/run/containerd", "/run/docker/plugins", "/run/docker"}

var shared struct {
	mu      sync.Mutex
	active  int
	existed map[string]bool
}

func noteSharedDirs() {
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if shared.active == 0 {
		shared.existed = map[string]bool{}
		for _, dir := range sharedDirs {
			_, err := os.Lstat(dir)
			shared.existed[dir] = err == nil
		}
	}
	shared.active++
}

func doneSharedDirs() {
	shared.mu.Lock()
	defer shared.mu.Unlock()
	shared.active--
	if shared.active > 0 {
		return
	}
	for _, dir := range sharedDirs {
		if !shared.existed[dir] {
			os.Remove(dir)
		}
	}
}
