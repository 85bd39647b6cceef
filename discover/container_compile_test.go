package discover

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/dockerfence/dockerfence/policy"
)

// TestCompileWithoutDocker: without Docker's answer, a one-shot apply
// fences by the network sections alone and says so, while the daemon
// (CompileHolding) holds every fenced network's containers until Docker
// answers, when the policy has container sections.
func TestCompileWithoutDocker(t *testing.T) {
	pol, err := policy.Parse("p.yaml", []byte("version: 1\nnetworks:\n  - match: {name: \"*\"}\ncontainers:\n  - match: {label: role=worker}\n    egress_default: deny\n"), policy.Options{ResolvConf: "/dev/null"})
	if err != nil {
		t.Fatal(err)
	}
	inv := &Inventory{Source: SourceNetlink, Networks: []policy.Network{{Name: "br-1", Bridge: "br-1", Subnets: []netip.Prefix{netip.MustParsePrefix("172.30.0.0/16")}}}}
	apply := inv.Compile(pol)
	if len(apply.ContainerChains) != 0 || !strings.Contains(strings.Join(apply.Warnings, "\n"), "only the network sections fence") {
		t.Errorf("apply without Docker: container chains %v, warnings %q", apply.ContainerChains, apply.Warnings)
	}
	run := inv.CompileHolding(pol)
	if len(run.ContainerChains) != 1 || !strings.Contains(strings.Join(run.Warnings, "\n"), "held until it does") || !strings.Contains(run.Text(), "fwdc_br-1.held") {
		t.Errorf("the daemon without Docker: container chains %v, warnings %q", run.ContainerChains, run.Warnings)
	}
	inv.Source = SourceDocker
	if r := inv.CompileHolding(pol); strings.Contains(strings.Join(r.Warnings, "\n"), "has not answered") {
		t.Errorf("with Docker the daemon warned: %q", r.Warnings)
	}
}
