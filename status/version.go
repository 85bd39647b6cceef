package status

import (
	"context"
	"fmt"
	"io"
	"runtime/debug"
	"time"

	"github.com/dockerfence/dockerfence/docker"
	"golang.org/x/sys/unix"
)

// Version is what `dockerfence version` reports.
type Version struct {
	// Version and Commit identify the build; Commit is "" when neither
	// the build nor the binary's build information names one.
	Version, Commit string
	// Kernel is the release of the running kernel; "" when unknown.
	Kernel string
	// Docker and DockerAPI are the versions of Docker's server and of the
	// API spoken with it; DockerErr says why they are not known.
	Docker, DockerAPI string
	DockerErr         error
}

// GatherVersion gathers the versions: version and commit, or, if commit is
// "", the VCS revision Go recorded in the binary; the running kernel's
// release; and the versions of Docker at host (as docker.Dial takes it),
// which has 3 s to answer.
func GatherVersion(ctx context.Context, version, commit, host string) Version {
	v := Version{Version: version, Commit: commit}
	if info, ok := debug.ReadBuildInfo(); ok && v.Commit == "" {
		for _, s := range info.Settings {
			if s.Key == "vcs.revision" {
				v.Commit = s.Value
			}
		}
	}
	var u unix.Utsname
	if unix.Uname(&u) == nil {
		v.Kernel = unix.ByteSliceToString(u.Release[:])
	}
	c, err := docker.Dial(host)
	if err == nil {
		defer c.Close()
		ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		defer cancel()
		v.DockerAPI, v.Docker, err = c.Version(ctx)
	}
	v.DockerErr = err
	return v
}

// WriteText prints v as `dockerfence version` does.
func (v Version) WriteText(w io.Writer) {
	fmt.Fprintf(w, "dockerfence %s (commit %s)\n", v.Version, OrDash(v.Commit))
	if v.Kernel != "" {
		fmt.Fprintf(w, "kernel      %s\n", v.Kernel)
	}
	if v.DockerErr != nil {
		fmt.Fprintf(w, "docker      not reachable (%v)\n", v.DockerErr)
		return
	}
	fmt.Fprintf(w, "docker      %s (API %s)\n", v.Docker, v.DockerAPI)
}
