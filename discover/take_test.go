package discover

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
)

// Take with a Docker that is not there, or an address that cannot even be
// dialled, fences the bridges found over netlink and says why.
func TestTake(t *testing.T) {
	host := "unix://" + filepath.Join(t.TempDir(), "docker.sock")
	inv, err := Take(context.Background(), host)
	if err != nil {
		t.Skipf("bridges not listed here: %v", err)
	}
	var down *DownError
	if !errors.As(inv.DockerErr, &down) || down.Host != host || inv.Source != SourceNetlink || inv.Warning != "" {
		t.Errorf("Take without Docker = source %v, DockerErr %v, warning %q; want the bridges and a *DownError for %s", inv.Source, inv.DockerErr, inv.Warning, host)
	}

	inv, err = Take(context.Background(), "no-scheme-here")
	if err != nil {
		t.Fatal(err)
	}
	if inv.DockerErr == nil || errors.As(inv.DockerErr, &down) || inv.Source != SourceNetlink || inv.Warning == "" {
		t.Errorf("Take with a malformed address = source %v, DockerErr %v, warning %q; want the bridges, the dial error and a warning", inv.Source, inv.DockerErr, inv.Warning)
	}
}
