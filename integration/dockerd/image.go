package dockerd

import (
	"archive/tar"
	"bytes"
	"context"
	"debug/elf"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/docker/docker/api/types/image"
)

// Image is the tag of the image that Start imports into every daemon.
const Image = "busybox:df"

// busyboxPath is the static busybox of Debian's busybox-static package.
const busyboxPath = "/bin/busybox"

// applets get a symlink to busybox in the image's /bin.
var applets = []string{
	"sh", "ash", "arping", "cat", "echo", "env", "false", "grep", "head", "hostname",
	"id", "ip", "kill", "ls", "nc", "netstat", "nslookup", "ping", "ping6",
	"ps", "route", "sleep", "tail", "timeout", "true", "wc", "wget",
}

// checkBusybox checks that busybox is there and statically linked, as the
// image has no libc.
func checkBusybox() error {
	f, err := elf.Open(busyboxPath)
	if err != nil {
		return fmt.Errorf("static busybox %s (Debian package busybox-static): %v", busyboxPath, err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return fmt.Errorf("%s is dynamically linked; the image needs a static one (Debian package busybox-static)", busyboxPath)
		}
	}
	return nil
}

// busyboxTar is the image's root file system as a tar archive, built once.
var busyboxTar = sync.OnceValues(func() ([]byte, error) {
	bb, err := os.ReadFile(busyboxPath)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	mtime := time.Unix(0, 0)
	dir := func(name string, mode int64) error {
		return tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: name + "/", Mode: mode, ModTime: mtime})
	}
	file := func(name string, mode int64, data []byte) error {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: mode, Size: int64(len(data)), ModTime: mtime}); err != nil {
			return err
		}
		_, err := tw.Write(data)
		return err
	}
	errs := []error{
		dir("bin", 0o755), dir("etc", 0o755), dir("root", 0o700), dir("tmp", 0o1777),
		file("bin/busybox", 0o755, bb),
		file("etc/passwd", 0o644, []byte("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n")),
		file("etc/group", 0o644, []byte("root:x:0:\nnogroup:x:65534:\n")),
	}
	for _, a := range applets {
		errs = append(errs, tw.WriteHeader(&tar.Header{Typeflag: tar.TypeSymlink, Name: "bin/" + a, Linkname: "busybox", Mode: 0o777, ModTime: mtime}))
	}
	errs = append(errs, tw.Close())
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
})

// importBusybox imports the image Image into the daemon.
func (d *Daemon) importBusybox(t testing.TB) {
	t.Helper()
	data, err := busyboxTar()
	if err != nil {
		t.Fatalf("dockerd: build busybox image: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), apiTimeout)
	defer cancel()
	rc, err := d.Client.ImageImport(ctx, image.ImportSource{Source: bytes.NewReader(data), SourceName: "-"}, Image,
		image.ImportOptions{Message: "dockerfence test image"})
	if err != nil {
		t.Fatalf("dockerd (%s): import %s: %v", d.Engine.Name, Image, err)
	}
	defer rc.Close()
	if err := jsonStreamError(rc); err != nil {
		t.Fatalf("dockerd (%s): import %s: %v", d.Engine.Name, Image, err)
	}
	if _, err := d.Client.ImageInspect(ctx, Image); err != nil {
		t.Fatalf("dockerd (%s): image %s after import: %v", d.Engine.Name, Image, err)
	}
}

// jsonStreamError reads a stream of JSON progress messages to its end and
// returns the first error it reports.
func jsonStreamError(r io.Reader) error {
	dec := json.NewDecoder(r)
	for {
		var m struct {
			Error       string `json:"error"`
			ErrorDetail *struct {
				Message string `json:"message"`
			} `json:"errorDetail"`
		}
		if err := dec.Decode(&m); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
		if m.ErrorDetail != nil && m.ErrorDetail.Message != "" {
			return errors.New(m.ErrorDetail.Message)
		}
		if m.Error != "" {
			return errors.New(m.Error)
		}
	}
}
