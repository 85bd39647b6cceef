package nft

import (
	"errors"
	"fmt"
	"os"
	"sync"

	"golang.org/x/sys/unix"
)

// Kernel applies and reads dockerfence's table over netlink.
//
// The zero value (with NetNS set, if need be) is a one-shot Kernel: every
// call opens an nf_tables socket of its own and closes it, as a command
// that runs once needs. OpenKernel returns a lasting Kernel, which keeps
// one socket for all its calls until Close: the socket that owns the table
// where the kernel allows it (see Ownership). A Kernel's methods are safe
// for concurrent use; a lasting Kernel serializes them on its socket.
type Kernel struct {
	// NetNS is a file descriptor of the network namespace to work in; 0 means
	// the calling thread's.
	NetNS int
	// Ownership says whether the table is owned; see Ownership.
	Ownership Ownership
	// s is the lasting socket of a Kernel from OpenKernel; nil for a
	// one-shot Kernel.
	s *session
}

// Ownership says whether a Kernel makes the table its own.
type Ownership int

// Ownerships.
const (
	// OwnAuto uses the table flags owner and persist where the kernel has
	// both (Linux 6.9). A lasting Kernel then owns the table: only its
	// socket can change or delete it, "nft flush ruleset" skips it, and it
	// stays, without an owner, when the socket closes (the process exits
	// or is killed), until the next lasting Kernel adopts it. A one-shot
	// Kernel cannot keep a table owned past its own exit, so it creates
	// the table with flag persist alone, which a daemon can adopt later,
	// and changes a table without owner (orphaned) in place without taking
	// it. On older kernels the table is an ordinary one.
	OwnAuto Ownership = iota
	// OwnNever writes an ordinary table, as on kernels before 6.9: no
	// owner; flag persist only where the table has it already (the kernel
	// lets no update remove it). Tests use it to play an older kernel.
	OwnNever
)

// session is the lasting socket of a Kernel, and what it found out once.
// A one-shot Kernel opens one for the length of one Apply, Verify or Plan
// (temporary set): one socket for its reads and transactions, which owns
// nothing.
type session struct {
	mu        sync.Mutex
	c         *conn
	prot      *Protection
	temporary bool
}

// Options configure OpenKernel.
type Options struct {
	// NetNS is a file descriptor of the network namespace to work in; 0
	// means the calling thread's.
	NetNS     int
	Ownership Ownership
	// Socket, if set, is an nf_tables socket an earlier daemon opened and
	// left in systemd's file descriptor store (see SocketFile): the Kernel
	// uses it rather than a new one, and so keeps owning the table that
	// socket owns, which no one could flush or change while no daemon ran.
	// The socket works in the namespace it was opened in, whatever NetNS
	// says. The Kernel uses a duplicate of it: the caller closes Socket.
	Socket *os.File
}

// OpenKernel opens a lasting Kernel: one nf_tables socket for all its
// calls, which owns the table on kernels that allow it (see OwnAuto). It
// finds out at once which protection the kernel allows (see Protection).
// The caller must Close it; a table it owns then stays, orphaned, for the
// next lasting Kernel to adopt.
func OpenKernel(o Options) (*Kernel, error) {
	var c *conn
	var err error
	if o.Socket != nil {
		if c, err = fileConn(o.Socket); err != nil {
			return nil, fmt.Errorf("inherited nf_tables socket: %w", err)
		}
	} else if c, err = dialConn(o.NetNS); err != nil {
		return nil, fmt.Errorf("open nf_tables socket: %w", explain(err))
	}
	k := &Kernel{NetNS: o.NetNS, Ownership: o.Ownership, s: &session{c: c}}
	if _, err := k.Protection(); err != nil {
		c.close()
		return nil, err
	}
	return k, nil
}

// Close closes a lasting Kernel's socket; a table it owns stays, without an
// owner. Closing a one-shot Kernel does nothing.
func (k *Kernel) Close() error {
	if k.s == nil {
		return nil
	}
	k.s.mu.Lock()
	defer k.s.mu.Unlock()
	if k.s.c == nil {
		return nil
	}
	err := k.s.c.close()
	k.s.c = nil
	return err
}

// SocketFile returns a duplicate of a lasting Kernel's socket, for
// systemd's file descriptor store (sd_notify FDSTORE=1): while the store
// holds it, the socket stays open, and so the table stays owned, even
// when the daemon is killed; the next daemon gets it back (Options.Socket)
// and goes on owning the table. The caller closes the file.
func (k *Kernel) SocketFile() (*os.File, error) {
	if !k.lasting() {
		return nil, errors.New("nftables: a one-shot Kernel has no lasting socket")
	}
	k.s.mu.Lock()
	defer k.s.mu.Unlock()
	if k.s.c == nil {
		return nil, errClosed
	}
	rc, err := k.s.c.c.SyscallConn()
	if err != nil {
		return nil, err
	}
	var fd int
	var derr error
	if err := rc.Control(func(s uintptr) { fd, derr = unix.FcntlInt(s, unix.F_DUPFD_CLOEXEC, 0) }); err != nil {
		return nil, err
	}
	if derr != nil {
		return nil, os.NewSyscallError("fcntl F_DUPFD_CLOEXEC", derr)
	}
	return os.NewFile(uintptr(fd), "nf_tables socket"), nil
}

// errClosed is returned by the calls of a lasting Kernel after Close.
var errClosed = errors.New("nftables: the Kernel is closed")

// lasting reports whether the Kernel keeps its socket (OpenKernel).
func (k Kernel) lasting() bool { return k.s != nil && !k.s.temporary }

// oneSocket calls fn with a Kernel that makes all its calls on one socket:
// k itself if it is lasting, else a copy with a socket of its own, closed
// when fn returns.
func (k Kernel) oneSocket(fn func(Kernel) error) error {
	if k.s != nil {
		return fn(k)
	}
	c, err := dialConn(k.NetNS)
	if err != nil {
		return fmt.Errorf("open nf_tables socket: %w", explain(err))
	}
	defer c.close()
	k.s = &session{c: c, temporary: true}
	return fn(k)
}

// use calls fn with the Kernel's socket: the lasting one, or one opened for
// the call.
func (k Kernel) use(fn func(c *conn) error) error {
	if k.s != nil {
		k.s.mu.Lock()
		defer k.s.mu.Unlock()
		if k.s.c == nil {
			return errClosed
		}
		return fn(k.s.c)
	}
	c, err := dialConn(k.NetNS)
	if err != nil {
		return fmt.Errorf("open nf_tables socket: %w", explain(err))
	}
	defer c.close()
	return fn(c)
}

// Protection says how the kernel protects the table a Kernel writes.
type Protection struct {
	// Flags are the table flags the Kernel creates its table with and
	// keeps on it: owner and persist, persist, or none.
	Flags TableFlags
	// Port is the netlink port ID of the Kernel's socket: with FlagOwner,
	// the owner of the table.
	Port uint32
	// Why says what protects the table, and why not more, in one sentence.
	Why string
}

// String returns Why.
func (p Protection) String() string { return p.Why }

// Protection returns the protection the Kernel gives its table: owned
// (owner and persist) for a lasting Kernel on Linux 6.9 or later; persist
// alone for a one-shot Kernel there; none on older kernels or with
// OwnNever. A lasting Kernel finds out whether the kernel has the flags by
// trying them, once, in a transaction that is never committed (which
// also holds for a kernel that has them from a backport); a one-shot
// Kernel goes by the kernel's version (uname), since an aborted
// transaction costs the kernel an RCU grace period, tens of milliseconds
// on a busy host.
func (k Kernel) Protection() (Protection, error) {
	var p Protection
	err := k.use(func(c *conn) error {
		var err error
		p, err = k.protection(c)
		return err
	})
	return p, err
}

func (k Kernel) protection(c *conn) (Protection, error) {
	if k.s != nil && k.s.prot != nil {
		return *k.s.prot, nil
	}
	p := Protection{Port: c.port()}
	switch {
	case k.Ownership == OwnNever:
		p.Why = "an ordinary table, as asked (OwnNever): any process can change or delete it"
	default:
		ok := kernelHasPersist()
		if k.lasting() {
			var err error
			if ok, err = probePersist(c); err != nil {
				return p, fmt.Errorf("probe table flags: %w", k.explainFirst(c, err))
			}
		}
		switch {
		case !ok:
			p.Why = "an ordinary table: this kernel lacks the table flag persist (Linux 6.9), without which an owned table would go with its owner; any process can change or delete it"
		case k.lasting():
			p.Flags = FlagOwner | FlagPersist
			p.Why = fmt.Sprintf("owned by this process's netlink socket (port %d; flags owner, persist): no other process can change or delete the table, nft flush ruleset skips it, and it stays when this process exits", p.Port)
		default:
			p.Flags = FlagPersist
			p.Why = "persistent (flag persist) but not owned, as one command cannot keep it owned past its exit: any process can change or delete it until a dockerfence daemon adopts it"
		}
	}
	if k.s != nil {
		k.s.prot = &p
	}
	return p, nil
}

// kernelHasPersist reports whether the running kernel is Linux 6.9 or
// later, which has the table flag persist (and owner, from 5.12).
var kernelHasPersist = sync.OnceValue(func() bool {
	var u unix.Utsname
	if unix.Uname(&u) != nil {
		return false
	}
	return releaseAtLeast(unix.ByteSliceToString(u.Release[:]), 6, 9)
})

// releaseAtLeast reports whether a kernel release ("6.18.44-fc-v1300") is
// major.minor or later.
func releaseAtLeast(release string, major, minor int) bool {
	var ma, mi int
	if n, _ := fmt.Sscanf(release, "%d.%d", &ma, &mi); n < 2 {
		return false
	}
	return ma > major || ma == major && mi >= minor
}

// probePersist reports whether the kernel takes the table flags owner and
// persist, by asking for them in a transaction that always fails, so
// that nothing is committed: it creates a table of a name that no one
// uses, then creates it again exclusively. A kernel without the flags
// refuses the first command (EOPNOTSUPP).
func probePersist(c *conn) (bool, error) {
	name := fmt.Sprintf("dockerfence-probe-%d-%d", os.Getpid(), c.port())
	tx := &Transaction{Table: name, Ops: []Op{{Kind: OpAddTable, Flags: FlagOwner | FlagPersist, SetFlags: true}, {Kind: OpAddTable}}}
	enc, err := encode(tx)
	if err != nil {
		return false, err
	}
	enc.msgs[1].Header.Flags |= excl
	ans, err := c.batch(enc.msgs)
	if err != nil {
		return false, err
	}
	for _, r := range ans.refused {
		switch r.msg {
		case 0:
			return false, r.err // the batch itself
		case 1:
			if errors.Is(r.err, unix.EOPNOTSUPP) {
				return false, nil
			}
			return false, r.err
		}
	}
	return true, nil
}

// excl is NLM_F_EXCL: create only what does not exist.
const excl = 0x200

// Apply makes the kernel's table equal to t and reports whether anything
// changed. A missing table is created in one netlink transaction. An
// existing one is changed in place, chain by chain and element by element
// (see changes), so that counters of unchanged rules survive and no packet
// crossing the commit meets a mix of old and new that lets it through: sets
// the new rules need are first created in a transaction that nothing refers
// to yet, then one transaction switches the table over. If the kernel
// rejects any part of that, the previous table stays exactly as it was, and
// the staged sets are removed again.
//
// A lasting Kernel that owns tables (see OwnAuto) first adopts an orphaned
// table in a transaction of its own, then reads it again: from then on no
// one else can change it. A one-shot Kernel changes an orphaned table
// without taking it. A table owned by another socket cannot be changed.
//
// The rules record what each set should hold, so Apply reads a set's
// elements only when that differs from t. Sets named in verify are read and
// compared anyway: the daemon names those whose elements another process
// changed. Verify reads every set.
func (k Kernel) Apply(t *Table, verify ...string) (bool, error) {
	var changed bool
	err := k.oneSocket(func(k Kernel) error {
		var err error
		changed, err = ApplyTo(k, t, verify...)
		return err
	})
	return changed, err
}

// Verify is Apply that reads every set the model owns in full and compares
// its elements, trusting no digest: what a daemon does when it starts or
// adopts the table, and at its periodic resync.
func (k Kernel) Verify(t *Table) (bool, error) {
	return k.Apply(t, t.OwnedSets()...)
}

// Plan returns what Apply would do now: it reads the table (and the sets
// that Apply would read) and computes the transactions, but sends nothing.
func (k Kernel) Plan(t *Table, verify ...string) (*Plan, error) {
	var p *Plan
	err := k.oneSocket(func(k Kernel) error {
		var err error
		p, err = MakePlan(k, t, verify...)
		return err
	})
	return p, err
}

// Commit sends one transaction in one batch. If the kernel refuses it, the
// table is as it was, and the error (a *CommandError within) names the
// first command the kernel refused.
func (k Kernel) Commit(tx *Transaction) error {
	if len(tx.Ops) == 0 {
		return nil
	}
	enc, err := encode(tx)
	if err != nil {
		return fmt.Errorf("build batch for table inet %s: %w", tx.Table, err)
	}
	return k.use(func(c *conn) error {
		ans, err := c.batch(enc.msgs)
		if err != nil {
			return fmt.Errorf("apply table inet %s: %w", tx.Table, explain(err))
		}
		if len(ans.refused) == 0 {
			return nil
		}
		return fmt.Errorf("apply table inet %s: the kernel refused the transaction, the previous table is unchanged: %w", tx.Table, k.explainRefusal(c, tx.Table, commandError(tx, enc, ans)))
	})
}

// CommandError is the kernel's refusal of a transaction: of one of its
// commands, or of the whole batch.
type CommandError struct {
	// Index is the index of the command in the transaction's Ops, -1 when
	// the kernel refused the batch as a whole.
	Index int
	// Command is the command in nft syntax, cut to a line.
	Command string
	// Err is the kernel's error number.
	Err error
	// Others counts the other commands the kernel refused in the same
	// batch, often consequences of the first.
	Others int
}

// Error names the command and the kernel's error.
func (e *CommandError) Error() string {
	if e.Index < 0 {
		return e.Err.Error()
	}
	s := fmt.Sprintf("command %d (%s): %v", e.Index+1, e.Command, e.Err)
	if e.Others > 0 {
		s += fmt.Sprintf("; %d more commands refused", e.Others)
	}
	return s
}

// Unwrap returns the kernel's error number.
func (e *CommandError) Unwrap() error { return e.Err }

// commandError maps the kernel's refusals back to the transaction's
// commands: the first refused one, and how many others were.
func commandError(tx *Transaction, enc *encoder, ans batchAnswer) *CommandError {
	first := ans.refused[0]
	if first.msg == 0 || first.msg > len(enc.msgs) {
		return &CommandError{Index: -1, Err: first.err}
	}
	seen := map[int]bool{}
	for _, r := range ans.refused {
		if r.msg > 0 && r.msg <= len(enc.ops) {
			seen[enc.ops[r.msg-1]] = true
		}
	}
	i := enc.ops[first.msg-1]
	return &CommandError{Index: i, Command: shortOp(tx, tx.Ops[i]), Err: first.err, Others: len(seen) - 1}
}

// explainRefusal explains the kernel's refusal of a batch on c: a refusal
// of the batch as a whole as explain does; a command refused with EPERM
// means the table is owned by another socket, whose port it names.
func (k Kernel) explainRefusal(c *conn, table string, e *CommandError) error {
	if e.Index < 0 {
		return k.explainFirst(c, e)
	}
	if errors.Is(e.Err, unix.EPERM) {
		owner := "another process's netlink socket"
		st, err := readTable(c, FamilyInet, table)
		for _, f := range sideFamilies {
			if err == nil && (st == nil || st.Flags&FlagOwner == 0) {
				st, err = readTable(c, f, table)
			}
		}
		if err == nil && st != nil && st.Flags&FlagOwner != 0 {
			owner = fmt.Sprintf("the netlink socket of port %d", st.Owner)
			if name := OwnerProcess(st.Owner); name != "" {
				owner += fmt.Sprintf(" (process %d, %s)", st.Owner, name)
			}
		}
		return fmt.Errorf("%w: table %s %s is owned by %s, and only its owner can change it: if that is dockerfence run, give this command the daemon's --socket so that the daemon does it, or stop the daemon (systemctl stop dockerfence; the table stays, orphaned, and commands then change it)", e, st.familyOr(), table, owner)
	}
	return explain(e)
}

// Delete removes the inet table of that name, and the netdev and bridge
// tables of that name (see Table.Netdev, Table.Bridge), in one
// transaction. It reports whether
// either existed. A table owned by another socket cannot be deleted
// (EPERM).
func (k Kernel) Delete(name string) (bool, error) {
	existed := true
	err := k.use(func(c *conn) error {
		tx := &Transaction{Table: name}
		for _, fam := range Families {
			st, err := readTable(c, fam, name)
			if err != nil {
				return fmt.Errorf("delete table %s %s: %w", fam, name, k.explainFirst(c, err))
			}
			if st != nil {
				tx.Ops = append(tx.Ops, Op{Kind: OpDeleteTable, Family: fam})
			}
		}
		if len(tx.Ops) == 0 {
			existed = false
			return nil
		}
		enc, err := encode(tx)
		if err != nil {
			return err
		}
		ans, err := c.batch(enc.msgs)
		if err != nil {
			return fmt.Errorf("delete table inet %s: %w", name, k.explainFirst(c, err))
		}
		if len(ans.refused) == 0 {
			return nil
		}
		ce := commandError(tx, enc, ans)
		if len(tx.Ops) == 1 && ce.Index == 0 && errors.Is(ce.Err, unix.ENOENT) {
			existed = false // deleted by another since it was read
			return nil
		}
		return fmt.Errorf("delete table inet %s: %w", name, k.explainRefusal(c, name, ce))
	})
	return existed && err == nil, err
}

// Read returns the table named name as the kernel has it, or nil if there is
// none: its flags and owner, its chains, every rule's expressions (in
// canonical form, see RuleState.Exprs) and counters, its sets' types and
// flags, and its maps' elements; not the elements of plain sets (see Dump).
func (k Kernel) Read(name string) (*State, error) {
	return k.ReadFamily(FamilyInet, name)
}

// ReadFamily is Read of the table of family fam.
func (k Kernel) ReadFamily(fam Family, name string) (*State, error) {
	var st *State
	err := k.use(func(c *conn) error {
		var err error
		if st, err = read(c, fam, name); err != nil {
			return fmt.Errorf("read table %s %s: %w", fam, name, k.explainFirst(c, err))
		}
		return nil
	})
	return st, err
}

// ReadAll is Read with the elements of every plain set dumped too, and
// the netdev and bridge tables of the same name read the same way
// (State.Netdev, State.Bridge).
func (k Kernel) ReadAll(name string) (*State, error) {
	var st *State
	err := k.use(func(c *conn) error {
		sides := map[Family]*State{}
		for _, fam := range Families {
			s, err := read(c, fam, name)
			if err != nil {
				return fmt.Errorf("read table %s %s: %w", fam, name, k.explainFirst(c, err))
			}
			if s != nil {
				var plain []string
				for _, ss := range s.Sets {
					if ss.Flags&unix.NFT_SET_MAP == 0 {
						plain = append(plain, ss.Name)
					}
				}
				if err := dumpSets(c, s, plain); err != nil {
					return err
				}
			}
			if fam == FamilyInet {
				st = s
			} else {
				sides[fam] = s
			}
		}
		if st != nil {
			st.NetdevRead = true
			for f, s := range sides {
				st.setSide(f, s)
			}
		}
		return nil
	})
	return st, err
}

// Dump reads the elements of the named plain sets into st.
func (k Kernel) Dump(st *State, names []string) error {
	if len(names) == 0 {
		return nil
	}
	return k.use(func(c *conn) error {
		if err := dumpSets(c, st, names); err != nil {
			return explain(err)
		}
		return nil
	})
}

// explain turns the kernel's bare errno into a message that says what to
// do, in one line.
func explain(err error) error {
	switch {
	case errors.Is(err, unix.EPERM), errors.Is(err, unix.EACCES):
		return fmt.Errorf("%w: nftables needs CAP_NET_ADMIN in this network namespace: run as root (sudo), or grant the capability (systemd: AmbientCapabilities=CAP_NET_ADMIN)", err)
	case errors.Is(err, unix.EPROTONOSUPPORT), errors.Is(err, unix.EAFNOSUPPORT):
		return fmt.Errorf("%w: %s", err, noNFTables)
	case errors.Is(err, unix.ENOBUFS):
		return fmt.Errorf("%w: the kernel ran out of netlink buffer space for the batch", err)
	}
	return err
}

// noNFTables says what to do on a kernel without nf_tables.
const noNFTables = "this kernel has no nf_tables: load the module (modprobe nf_tables) or use a kernel built with CONFIG_NF_TABLES"

// explainFirst is explain for the answer to the first nf_tables request of a
// command, which also tells a kernel without nf_tables. Without nfnetlink,
// opening the socket fails with EPROTONOSUPPORT (explain says so); with
// nfnetlink but without nf_tables, nfnetlink answers a request with EINVAL
// and a batch with EOPNOTSUPP, which a kernel with nf_tables also gives for a
// request it finds wrong. A request for the ruleset's generation tells the
// two apart: it cannot be wrong, so EINVAL to it means no nf_tables.
func (k Kernel) explainFirst(c *conn, err error) error {
	if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.EOPNOTSUPP) {
		if _, gerr := generation(c); errors.Is(gerr, unix.EINVAL) {
			return fmt.Errorf("%w: %s", err, noNFTables)
		}
	}
	return explain(err)
}
