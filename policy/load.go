package policy

import (
	"errors"
	"fmt"
	"io"
	"os"
	"syscall"
)

// Options tunes loading.
type Options struct {
	// ResolvConf is the host's resolv.conf; empty means /etc/resolv.conf.
	// @resolvers holds its nameservers, or those of ResolvedConf when its
	// only one is systemd-resolved's stub (see ResolversFile).
	ResolvConf string
	// ResolvedConf is systemd-resolved's file of upstream servers; empty
	// means /run/systemd/resolve/resolv.conf.
	ResolvedConf string
	// MaxListEntries bounds the entries of one list file; 0 means 1,000,000.
	MaxListEntries int
}

// resolvConf returns the file @resolvers comes from.
func (o Options) resolvConf() string {
	if o.ResolvConf == "" {
		return "/etc/resolv.conf"
	}
	return o.ResolvConf
}

// resolvedConf returns systemd-resolved's file of upstream servers.
func (o Options) resolvedConf() string {
	if o.ResolvedConf == "" {
		return "/run/systemd/resolve/resolv.conf"
	}
	return o.ResolvedConf
}

// maxPolicySize bounds the policy file itself.
const maxPolicySize = 4 << 20

// Load reads and validates the policy file at path. The file must be a
// regular file: a FIFO would block the reader and a device such as
// /dev/zero would never end.
func Load(file string, opts Options) (*Policy, error) {
	f, err := openRegular(file)
	if errors.Is(err, errNotRegular) {
		return nil, fmt.Errorf("policy %s: %w; give the policy file itself", file, err)
	}
	if err != nil {
		return nil, fmt.Errorf("policy %s: %w", file, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("policy %s: %w", file, unwrapPathError(err))
	}
	if st.Size() > maxPolicySize {
		return nil, fmt.Errorf("policy %s: %d bytes is more than the %d a policy may have; move long address lists to list files", file, st.Size(), maxPolicySize)
	}
	data, err := io.ReadAll(io.LimitReader(f, maxPolicySize+1))
	if err != nil {
		return nil, fmt.Errorf("policy %s: %w", file, unwrapPathError(err))
	}
	if len(data) > maxPolicySize {
		return nil, fmt.Errorf("policy %s: more than the %d bytes a policy may have (it grew while being read); move long address lists to list files", file, maxPolicySize)
	}
	return Parse(file, data, opts)
}

// openRegular opens file for reading if it is a regular file. It refuses
// directories, FIFOs, sockets and devices without blocking on them: the
// type is checked before opening, and again on the open file, which is
// opened non-blocking so that a FIFO swapped in between cannot hang.
func openRegular(file string) (*os.File, error) {
	st, err := os.Stat(file)
	if err != nil {
		return nil, unwrapPathError(err)
	}
	if err := checkRegular(st); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(file, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, unwrapPathError(err)
	}
	if st, err = f.Stat(); err != nil {
		f.Close()
		return nil, unwrapPathError(err)
	}
	if err := checkRegular(st); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// errNotRegular is wrapped by the errors of files that exist but are not
// regular files.
var errNotRegular = errors.New("not a regular file")

// checkRegular says what a file that is not a regular file is instead.
func checkRegular(st os.FileInfo) error {
	m := st.Mode()
	what := "an irregular file"
	switch {
	case m.IsRegular():
		return nil
	case m.IsDir():
		return fmt.Errorf("is a directory, %w", errNotRegular)
	case m&os.ModeNamedPipe != 0:
		what = "a FIFO"
	case m&os.ModeSocket != 0:
		what = "a socket"
	case m&os.ModeDevice != 0:
		what = "a device"
	}
	return fmt.Errorf("is %s, %w", what, errNotRegular)
}

// unwrapPathError returns the cause of a *os.PathError, whose operation and
// path the messages already say, or err itself.
func unwrapPathError(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// DefaultPath is where dockerfence looks for its policy file when none is
// named.
const DefaultPath = "/etc/dockerfence/policy.yaml"

// NotLoadedError is the error of a policy file that is not valid. Err, an
// ErrorList, says every problem, one a line, each at its position, so that
// every line of the error matters.
type NotLoadedError struct{ Err error }

// Error says that the policy was not loaded, then every problem.
func (e *NotLoadedError) Error() string {
	return "policy not loaded, nothing changed:\n" + e.Err.Error()
}

// Unwrap returns Err.
func (e *NotLoadedError) Unwrap() error { return e.Err }

// InvalidError is the error of a policy file that dockerfence check found
// not valid: the file, then every problem, one a line, each at its
// position.
type InvalidError struct {
	File string
	Err  error
}

// Error says that File is invalid, then every problem.
func (e *InvalidError) Error() string { return e.File + ": invalid:\n" + e.Err.Error() }

// Unwrap returns Err.
func (e *InvalidError) Unwrap() error { return e.Err }

// LoadOrDefault loads file; when file is "", it loads DefaultPath if that
// exists, else the embedded default policy (whose Source is DefaultName).
// A policy file that is not valid gives a *NotLoadedError.
func LoadOrDefault(file string, opts Options) (*Policy, error) {
	return loadOrDefault(file, DefaultPath, opts)
}

func loadOrDefault(file, defaultPath string, opts Options) (*Policy, error) {
	if file == "" {
		if _, err := os.Stat(defaultPath); err != nil {
			p, err := Default(opts)
			if p != nil {
				p.Absent = defaultPath
			}
			return p, err
		}
		file = defaultPath
	}
	p, err := Load(file, opts)
	if err != nil {
		if errors.As(err, new(ErrorList)) {
			return nil, &NotLoadedError{err}
		}
		return nil, err
	}
	return p, nil
}
