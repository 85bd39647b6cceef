package status

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
)

func TestVersionText(t *testing.T) {
	for _, tc := range []struct {
		v    Version
		want string
	}{{
		v: Version{Version: "1.2.0", Commit: "abc123", Kernel: "6.12.0", Docker: "28.3.1", DockerAPI: "1.51"},
		want: "dockerfence 1.2.0 (commit abc123)\n" +
			"kernel      6.12.0\n" +
			"docker      28.3.1 (API 1.51)\n",
	}, {
		v: Version{Version: "dev", Kernel: "6.12.0", DockerErr: errors.New("docker is not reachable at unix:///var/run/docker.sock")},
		want: "dockerfence dev (commit -)\n" +
			"kernel      6.12.0\n" +
			"docker      not reachable (docker is not reachable at unix:///var/run/docker.sock)\n",
	}} {
		var b strings.Builder
		tc.v.WriteText(&b)
		if b.String() != tc.want {
			t.Errorf("WriteText of %+v:\n%s\nwant:\n%s", tc.v, b.String(), tc.want)
		}
	}
}

func TestGatherVersion(t *testing.T) {
	v := GatherVersion(context.Background(), "1.2.0", "abc123", "unix://"+filepath.Join(t.TempDir(), "docker.sock"))
	if v.Version != "1.2.0" || v.Commit != "abc123" || v.Kernel == "" || v.DockerErr == nil || v.Docker != "" {
		t.Errorf("GatherVersion without Docker = %+v, want the build's versions, the kernel's, and why Docker's are unknown", v)
	}
}
