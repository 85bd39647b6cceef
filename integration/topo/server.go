package topo

import (
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
)

// TCPServer is an in-process TCP echo server listening inside a namespace.
// On each accepted connection it writes "hello from <local addr>\n" and then
// echoes everything it receives.
type TCPServer struct {
	ln       net.Listener
	accepted atomic.Int64
	wg       sync.WaitGroup

	mu     sync.Mutex
	closed bool
	conns  map[net.Conn]struct{}
}

// ListenTCP starts a TCPServer bound inside the namespace to addr (e.g.
// "192.168.100.50:5432" or "[fd00:100::50]:5432"; port 0 picks a free port).
// It fails the test if the address cannot be bound. The server is stopped by
// test cleanup.
func (n *NS) ListenTCP(t T, addr string) *TCPServer {
	t.Helper()
	var ln net.Listener
	if err := n.Do(func() error {
		var err error
		ln, err = net.Listen("tcp", addr)
		return err
	}); err != nil {
		t.Fatalf("topo: listen tcp %s in %s: %v", addr, n.Name, err)
	}
	s := &TCPServer{ln: ln, conns: map[net.Conn]struct{}{}}
	t.Cleanup(func() { s.Close() })
	s.wg.Add(1)
	go s.serve()
	return s
}

func (s *TCPServer) serve() {
	defer s.wg.Done()
	for {
		c, err := s.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue // transient, e.g. ECONNABORTED
		}
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			c.Close()
			return
		}
		s.conns[c] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		s.accepted.Add(1)
		go s.handle(c)
	}
}

func (s *TCPServer) handle(c net.Conn) {
	defer s.wg.Done()
	defer func() {
		s.mu.Lock()
		delete(s.conns, c)
		s.mu.Unlock()
		c.Close()
	}()
	if _, err := io.WriteString(c, "hello from "+c.LocalAddr().String()+"\n"); err != nil {
		return
	}
	io.Copy(c, c) //nolint:errcheck // ends when the peer or Close closes c
}

// Addr returns the address the server listens on.
func (s *TCPServer) Addr() string { return s.ln.Addr().String() }

// Accepted returns the number of connections accepted so far.
func (s *TCPServer) Accepted() int64 { return s.accepted.Load() }

// Close stops the server, closes all its connections and waits for its
// goroutines to finish. It is safe to call more than once.
func (s *TCPServer) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	err := s.ln.Close()
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
	return err
}

// UDPServer is an in-process UDP echo server listening inside a namespace.
// It answers each datagram with the same payload and counts the datagrams it
// receives.
type UDPServer struct {
	conn     *net.UDPConn
	received atomic.Int64
	done     chan struct{}
	once     sync.Once
}

// ListenUDP starts a UDPServer bound inside the namespace to addr (e.g.
// "192.168.100.2:53" or "[fd00:100::2]:53"; port 0 picks a free port). It
// fails the test if the address cannot be bound. The server is stopped by
// test cleanup.
func (n *NS) ListenUDP(t T, addr string) *UDPServer {
	t.Helper()
	laddr, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		t.Fatalf("topo: listen udp %s: %v", addr, err)
	}
	var conn *net.UDPConn
	if err := n.Do(func() error {
		var err error
		conn, err = net.ListenUDP("udp", laddr)
		return err
	}); err != nil {
		t.Fatalf("topo: listen udp %s in %s: %v", addr, n.Name, err)
	}
	s := &UDPServer{conn: conn, done: make(chan struct{})}
	t.Cleanup(func() { s.Close() })
	go s.serve()
	return s
}

func (s *UDPServer) serve() {
	defer close(s.done)
	buf := make([]byte, 65536)
	for {
		nr, from, err := s.conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue // e.g. ECONNREFUSED from an earlier reply
		}
		s.received.Add(1)
		s.conn.WriteToUDPAddrPort(buf[:nr], from) //nolint:errcheck // best effort echo
	}
}

// Addr returns the address the server listens on.
func (s *UDPServer) Addr() string { return s.conn.LocalAddr().String() }

// Received returns the number of datagrams received so far.
func (s *UDPServer) Received() int64 { return s.received.Load() }

// Close stops the server and waits for its goroutine to finish. It is safe
// to call more than once.
func (s *UDPServer) Close() error {
	var err error
	s.once.Do(func() {
		err = s.conn.Close()
		<-s.done
	})
	return err
}
