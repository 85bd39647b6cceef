package policy

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"strings"
	"unicode/utf8"
)

func mustPrefixes(ss ...string) []netip.Prefix {
	out := make([]netip.Prefix, len(ss))
	for i, s := range ss {
		out[i] = netip.MustParsePrefix(s)
	}
	return out
}

// Builtin list contents.
var (
	privatePrefixes  = mustPrefixes("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "169.254.0.0/16", "fc00::/7", "fe80::/10")
	metadataPrefixes = mustPrefixes("169.254.169.254/32", "fd00:ec2::254/128")
)

// builtinLists returns @private, @metadata and @resolvers, the last read
// from the file ResolversFile picks, and a warning if it could not be read.
func builtinLists(opts Options) (map[string]*List, string) {
	file, warning := ResolversFile(opts.resolvConf(), opts.resolvedConf())
	res, err := ReadResolvers(file)
	if err != nil {
		warning = fmt.Sprintf("@resolvers is empty: %v", err)
	}
	return map[string]*List{
		"private":   {Name: "private", Builtin: true, Prefixes: privatePrefixes},
		"metadata":  {Name: "metadata", Builtin: true, Prefixes: metadataPrefixes},
		"resolvers": {Name: "resolvers", Builtin: true, Prefixes: res, File: file},
	}, warning
}

// resolvedStub is the address of systemd-resolved's stub resolver.
var resolvedStub = netip.MustParseAddr("127.0.0.53")

// ResolversFile returns the file whose nameservers Docker hands
// containers, by Docker's own rule: resolved, the file of
// systemd-resolved's upstream servers, when the only nameserver of
// resolvConf is systemd-resolved's stub 127.0.0.53 (which containers
// cannot reach) and resolved exists; else resolvConf. With the stub alone
// and no resolved, it returns resolvConf and a warning.
func ResolversFile(resolvConf, resolved string) (file, warning string) {
	ns, err := ReadResolvers(resolvConf)
	if err != nil || len(ns) != 1 || ns[0].Addr() != resolvedStub {
		return resolvConf, ""
	}
	if _, err := os.Stat(resolved); err != nil {
		return resolvConf, fmt.Sprintf("@resolvers is systemd-resolved's stub 127.0.0.53 of %s, which containers cannot reach, and its upstream servers are unknown: %s: %v", resolvConf, resolved, unwrapPathError(err))
	}
	return resolved, ""
}

// ReadResolvers returns the nameserver addresses of a resolv.conf file as host prefixes.
func ReadResolvers(file string) ([]netip.Prefix, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	var out []netip.Prefix
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 2 || f[0] != "nameserver" {
			continue
		}
		a, err := netip.ParseAddr(f[1])
		if err != nil {
			continue
		}
		a = a.WithZone("").Unmap()
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	return out, nil
}

// ReadListFile reads a list file: one address or CIDR a line, '#' starts a
// comment, blank lines are skipped, a UTF-8 byte order mark is ignored. It
// reads at most max entries (0 means 1,000,000). Errors carry the list
// file's positions; an error without a file name is about the file as a
// whole. The file must be a regular file: a FIFO would block the reader.
func ReadListFile(file string, max int) ([]netip.Prefix, []*Error) {
	if max <= 0 {
		max = defaultMaxListEntries
	}
	f, err := openRegular(file)
	if err != nil {
		return nil, []*Error{{Msg: fmt.Sprintf("cannot read list file %s: %v", file, err)}}
	}
	defer f.Close()
	var (
		out  []netip.Prefix
		errs []*Error
	)
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 64*1024)
	line := 0
	for sc.Scan() {
		line++
		text := sc.Text()
		if line == 1 {
			text = strings.TrimPrefix(text, "\ufeff")
		}
		if i := strings.IndexByte(text, '#'); i >= 0 {
			text = text[:i]
		}
		trimmed := strings.TrimSpace(text)
		if trimmed == "" {
			continue
		}
		col := strings.Index(text, trimmed)
		if i := strings.IndexByte(trimmed, 0); i >= 0 {
			errs = append(errs, &Error{Pos: listPos(file, line, text, col+i), Msg: "NUL byte in list entry; a list file is text"})
		} else if pfx, err := ParsePrefix(trimmed); err != nil {
			errs = append(errs, &Error{Pos: listPos(file, line, text, col), Msg: err.Error()})
		} else {
			out = append(out, pfx)
		}
		if len(errs) == maxErrors-1 {
			errs = append(errs, &Error{Pos: Pos{File: file, Line: line + 1, Column: 1}, Msg: fmt.Sprintf("stopped reading after %d bad entries; is this an address list?", len(errs))})
			return nil, errs
		}
		if len(out) > max {
			return nil, []*Error{{Pos: listPos(file, line, text, col), Msg: fmt.Sprintf("more than %d entries, the most one list file may hold; aggregate prefixes (adjacent and overlapping ones merge anyway) or split the list into several files", max)}}
		}
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			err = errors.New("a line longer than 64 KiB; a list file holds one address or CIDR a line")
		}
		errs = append(errs, &Error{Pos: Pos{File: file, Line: line + 1, Column: 1}, Msg: fmt.Sprintf("cannot read: %v", err)})
	}
	return out, errs
}

// defaultMaxListEntries is the most entries a list file may hold unless
// Options.MaxListEntries says otherwise. A million prefixes apply in
// seconds; a file far larger is more likely a mistake than a list.
const defaultMaxListEntries = 1_000_000

// listPos is the position of byte offset off of a list file's line.
func listPos(file string, line int, text string, off int) Pos {
	return Pos{File: file, Line: line, Column: 1 + utf8.RuneCountInString(text[:off])}
}

// Contains reports whether the address is in one of the prefixes.
func Contains(prefixes []netip.Prefix, a netip.Addr) bool {
	for _, p := range prefixes {
		if p.Contains(a) {
			return true
		}
	}
	return false
}
