package dnsname

import (
	"encoding/binary"
	"fmt"
	"strings"

	"github.com/miekg/dns"
)

// Header is what a resolver checks of an answer against its query: the
// message's ID, whether it is a response, and its one question.
type Header struct {
	ID       uint16
	Response bool
	Opcode   int
	// Name is the question's name in lower case, as presented (with its
	// trailing dot, special characters escaped as miekg/dns does), so
	// that a query and its answer compare equal whatever the case of
	// their letters (resolvers may randomise it, draft-vixie-dnsext-dns0x20).
	Name  string
	Type  uint16
	Class uint16
}

// ReadHeader reads the header and the question of msg, a DNS message,
// without the rest. A message shorter than a header, without exactly one
// question, or whose question does not parse, is an error wrapping
// ErrMalformed (one with no or several questions: ErrIgnored).
// ReadHeader does not panic, whatever msg holds.
func ReadHeader(msg []byte) (Header, error) {
	if len(msg) < 12 {
		return Header{}, fmt.Errorf("%w: %d bytes, shorter than a header", ErrMalformed, len(msg))
	}
	h := Header{
		ID:       binary.BigEndian.Uint16(msg[0:2]),
		Response: msg[2]&0x80 != 0,
		Opcode:   int(msg[2]>>3) & 0x0f,
	}
	if n := binary.BigEndian.Uint16(msg[4:6]); n != 1 {
		return Header{}, fmt.Errorf("%w: %d questions", ErrIgnored, n)
	}
	name, off, err := dns.UnpackDomainName(msg, 12)
	if err != nil {
		return Header{}, fmt.Errorf("%w: question name: %v", ErrMalformed, err)
	}
	if off+4 > len(msg) {
		return Header{}, fmt.Errorf("%w: question cut short", ErrMalformed)
	}
	h.Name = strings.ToLower(name)
	h.Type = binary.BigEndian.Uint16(msg[off:])
	h.Class = binary.BigEndian.Uint16(msg[off+2:])
	return h, nil
}
