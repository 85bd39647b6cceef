package main

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/dockerfence/dockerfence/policy"
)

func TestParseProbe(t *testing.T) {
	tests := []struct {
		in      string
		want    policy.Probe
		wantErr string
	}{
		{in: "192.168.1.5:5432", want: policy.Probe{Dst: netip.MustParseAddr("192.168.1.5"), Port: 5432, Proto: policy.ProtoTCP}},
		{in: "192.168.1.5:53/udp", want: policy.Probe{Dst: netip.MustParseAddr("192.168.1.5"), Port: 53, Proto: policy.ProtoUDP}},
		{in: "10.0.0.1", want: policy.Probe{Dst: netip.MustParseAddr("10.0.0.1"), Proto: policy.ProtoAny}},
		{in: "10.0.0.1/icmp", want: policy.Probe{Dst: netip.MustParseAddr("10.0.0.1"), Proto: policy.ProtoICMP}},
		{in: "[2001:db8::1]:443", want: policy.Probe{Dst: netip.MustParseAddr("2001:db8::1"), Port: 443, Proto: policy.ProtoTCP}},
		{in: "2001:db8::1", want: policy.Probe{Dst: netip.MustParseAddr("2001:db8::1"), Proto: policy.ProtoAny}},
		{in: "::ffff:10.0.0.1", want: policy.Probe{Dst: netip.MustParseAddr("10.0.0.1"), Proto: policy.ProtoAny}},
		{in: "10.0.0.1:0", wantErr: "port \"0\" is not 1..65535"},
		{in: "10.0.0.1:53/gre", wantErr: "unknown protocol \"gre\""},
		{in: "10.0.0.1:53/icmp", wantErr: "icmp has no ports"},
		{in: "db.example:5432", wantErr: "\"db.example\" is not an address"},
		{in: "[2001:db8::1:443", wantErr: "missing ]"},
	}
	for _, tt := range tests {
		got, err := parseProbe(tt.in)
		switch {
		case tt.wantErr != "":
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("parseProbe(%q) error = %v, want %q", tt.in, err, tt.wantErr)
			}
		case err != nil:
			t.Errorf("parseProbe(%q): %v", tt.in, err)
		case got != tt.want:
			t.Errorf("parseProbe(%q) = %+v, want %+v", tt.in, got, tt.want)
		}
	}
}

func TestRuleMatch(t *testing.T) {
	p, err := policy.Load("../../policy/testdata/seed.yaml", policy.Options{})
	if err != nil {
		t.Fatal(err)
	}
	got := []string{}
	for _, r := range p.Sections[0].Egress {
		got = append(got, ruleMatch(r))
	}
	want := "self|192.168.100.1|192.168.100.2 udp/53|192.168.0.0/16"
	if strings.Join(got, "|") != want {
		t.Errorf("ruleMatch = %q, want %q", strings.Join(got, "|"), want)
	}
}
