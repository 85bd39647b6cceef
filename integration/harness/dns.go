package harness

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dockerfence/dockerfence/integration/topo"
	"github.com/miekg/dns"
)

// DNSServer is an authoritative DNS server of the test's own (miekg/dns),
// listening on UDP and TCP port 53 of one address inside a namespace. It
// answers the names it was given with their A and AAAA records and TTLs,
// follows CNAME chains within its own names (the answer holds the chain
// and the addresses at its end, as a recursive resolver's would), and
// answers every other name with NXDOMAIN. It counts the queries of each
// name. UDP answers that do not fit (512 bytes, or the client's EDNS0
// buffer size) are truncated with the TC bit set, so the client retries
// over TCP, as real servers do.
type DNSServer struct {
	// Addr is the address it serves, "host:53".
	Addr string

	mu         sync.Mutex
	records    map[string]*dnsName // by lower-case fully qualified name
	queries    map[string]int      // by lower-case fully qualified name
	tcpQueries map[string]int      // those of queries that came over TCP
	clients    map[netip.Addr]int  // queries by source address
	total      atomic.Int64
	servers    []*dns.Server
}

// dnsName is what the server knows about one name.
type dnsName struct {
	ttl   uint32
	addrs []netip.Addr
	cname string // fully qualified, or ""
}

// StartDNS starts a DNSServer on UDP and TCP port 53 of addr (an address
// of ns) and stops it at test cleanup. It fails the test if the ports
// cannot be bound.
func StartDNS(t topo.T, ns Doer, addr string) *DNSServer {
	t.Helper()
	s := &DNSServer{Addr: net.JoinHostPort(addr, "53"), records: map[string]*dnsName{}, queries: map[string]int{}, tcpQueries: map[string]int{}, clients: map[netip.Addr]int{}}
	var pc net.PacketConn
	var ln net.Listener
	if err := ns.Do(func() error {
		var err error
		if pc, err = net.ListenPacket("udp", s.Addr); err != nil {
			return err
		}
		if ln, err = net.Listen("tcp", s.Addr); err != nil {
			pc.Close()
			return err
		}
		return nil
	}); err != nil {
		t.Fatalf("DNS server on %s: %v", s.Addr, err)
	}
	h := dns.HandlerFunc(s.serve)
	udp := &dns.Server{PacketConn: pc, Handler: h}
	tcp := &dns.Server{Listener: ln, Handler: h, ReadTimeout: 5 * time.Second}
	s.servers = []*dns.Server{udp, tcp}
	for _, srv := range s.servers {
		started := make(chan struct{})
		srv.NotifyStartedFunc = func() { close(started) }
		go srv.ActivateAndServe() //nolint:errcheck // ends with Shutdown
		<-started
	}
	t.Cleanup(s.Close)
	return s
}

// Close stops the server.
func (s *DNSServer) Close() {
	for _, srv := range s.servers {
		srv.Shutdown() //nolint:errcheck // already shut down is fine
	}
}

// Set makes name answer with addrs (A records for IPv4 addresses, AAAA for
// IPv6 ones) with the TTL ttl, replacing what it answered before.
func (s *DNSServer) Set(name string, ttl time.Duration, addrs ...netip.Addr) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.records[fqdn(name)] = &dnsName{ttl: uint32(ttl / time.Second), addrs: append([]netip.Addr(nil), addrs...)}
}

// SetCNAME makes name an alias of target with the TTL ttl.
func (s *DNSServer) SetCNAME(name, target string, ttl time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.records[fqdn(name)] = &dnsName{ttl: uint32(ttl / time.Second), cname: fqdn(target)}
}

// Queries returns how many queries for name the server has answered.
func (s *DNSServer) Queries(name string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.queries[fqdn(name)]
}

// TCPQueries returns how many queries for name came over TCP.
func (s *DNSServer) TCPQueries(name string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.tcpQueries[fqdn(name)]
}

// Clients returns how many queries came from each source address.
func (s *DNSServer) Clients() map[netip.Addr]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := make(map[netip.Addr]int, len(s.clients))
	for a, n := range s.clients {
		m[a] = n
	}
	return m
}

// Total returns how many queries the server has answered.
func (s *DNSServer) Total() int64 { return s.total.Load() }

func fqdn(name string) string { return dns.Fqdn(strings.ToLower(name)) }

// serve answers one query.
func (s *DNSServer) serve(w dns.ResponseWriter, req *dns.Msg) {
	s.total.Add(1)
	m := new(dns.Msg)
	m.SetReply(req)
	m.Authoritative = true
	if len(req.Question) != 1 {
		m.Rcode = dns.RcodeFormatError
		w.WriteMsg(m) //nolint:errcheck // the client retries
		return
	}
	q := req.Question[0]
	s.mu.Lock()
	s.queries[fqdn(q.Name)]++
	if w.RemoteAddr().Network() == "tcp" {
		s.tcpQueries[fqdn(q.Name)]++
	}
	if ap, err := netip.ParseAddrPort(w.RemoteAddr().String()); err == nil {
		s.clients[ap.Addr().Unmap()]++
	}
	name, found := q.Name, false
	for hops := 0; hops < 16; hops++ {
		r, ok := s.records[fqdn(name)]
		if !ok {
			break
		}
		found = true
		hdr := func(t uint16) dns.RR_Header {
			return dns.RR_Header{Name: name, Rrtype: t, Class: dns.ClassINET, Ttl: r.ttl}
		}
		if r.cname != "" {
			m.Answer = append(m.Answer, &dns.CNAME{Hdr: hdr(dns.TypeCNAME), Target: r.cname})
			if q.Qtype == dns.TypeCNAME {
				break
			}
			name = r.cname
			continue
		}
		for _, a := range r.addrs {
			switch {
			case a.Is4() && q.Qtype == dns.TypeA:
				m.Answer = append(m.Answer, &dns.A{Hdr: hdr(dns.TypeA), A: a.AsSlice()})
			case a.Is6() && q.Qtype == dns.TypeAAAA:
				m.Answer = append(m.Answer, &dns.AAAA{Hdr: hdr(dns.TypeAAAA), AAAA: a.AsSlice()})
			}
		}
		break
	}
	s.mu.Unlock()
	if !found {
		m.Rcode = dns.RcodeNameError
	}
	if _, udp := w.RemoteAddr().(*net.UDPAddr); udp {
		size := dns.MinMsgSize
		if opt := req.IsEdns0(); opt != nil && int(opt.UDPSize()) > size {
			size = int(opt.UDPSize())
		}
		m.Truncate(size)
	}
	w.WriteMsg(m) //nolint:errcheck // the client retries
}

// Lookup asks the DNS server at server ("host:port") from inside ns for the
// records of type qtype (dns.TypeA, dns.TypeAAAA) of name over UDP (TCP if
// the answer is truncated) and returns the addresses of the answer.
func Lookup(ns Doer, server, name string, qtype uint16, timeout time.Duration) ([]netip.Addr, error) {
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), qtype)
	var in *dns.Msg
	err := ns.Do(func() error {
		c := &dns.Client{Net: "udp", Timeout: timeout}
		var err error
		in, _, err = c.Exchange(m, server)
		if err == nil && in.Truncated {
			c.Net = "tcp"
			in, _, err = c.Exchange(m, server)
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	if in.Rcode != dns.RcodeSuccess {
		return nil, fmt.Errorf("%s: %s", name, dns.RcodeToString[in.Rcode])
	}
	var addrs []netip.Addr
	for _, rr := range in.Answer {
		switch rr := rr.(type) {
		case *dns.A:
			a, _ := netip.AddrFromSlice(rr.A.To4())
			addrs = append(addrs, a)
		case *dns.AAAA:
			a, _ := netip.AddrFromSlice(rr.AAAA)
			addrs = append(addrs, a)
		}
	}
	if len(addrs) == 0 {
		return nil, errors.New(name + ": no address in the answer")
	}
	return addrs, nil
}
