package integration

import (
	"slices"
	"strings"
	"testing"

	"github.com/dockerfence/dockerfence/integration/topo"
)

// fieldReportPolicy is the second field report's filter as it was
// written: IPv4 only.
var fieldReportPolicy = strings.Replace(seedPolicy, "      - deny: \"fd00:100::/64\"\n        comment: private network (IPv6)\n", "", 1)

// TestDualStackWarning applies the field report's IPv4-only filter to the
// dual-stack network of br-test (172.20.0.0/16 and fd00:20::/64): apply
// and status must say that its IPv6 traffic is not fenced, and the
// database shows why (refused over IPv4, reached over IPv6). The embedded
// default, whose @private holds fc00::/7 and fe80::/10, warns of nothing.
func TestDualStackWarning(t *testing.T) {
	e := newEnv(t)
	e.lanServers()
	want := "network br-test: its IPv6 subnet fd00:20::/64 has no IPv6 deny rule in section 1 egress, whose deny rules cover IPv4 only and whose egress_default is allow: IPv6 traffic from it to anywhere but this host is not fenced"
	pol := e.write("field.yaml", fieldReportPolicy)
	stdout, stderr, err := e.dfStdout("apply", "-c", pol)
	if err != nil {
		t.Fatalf("apply: %v\n%s%s", err, stdout, stderr)
	}
	t.Logf("apply:\n%s%s", stdout, stderr)
	if !strings.Contains(stderr, want) {
		t.Errorf("apply does not warn of the unfenced family; stderr:\n%s\nwant:\n%s", stderr, want)
	}
	if s := e.statusJSON("-c", pol); !slices.Contains(s.Warnings, want) {
		t.Errorf("status --json warnings %q lack %q", s.Warnings, want)
	}
	e.expect(e.tp.Ctr, []probe{
		{"database v4", "tcp", hostPort(topo.LANDB4, 5432), "refused"},
		{"database v6, the family the warning names", "tcp", hostPort(topo.LANDB6, 5432), "ok"},
	})

	stdout, stderr, err = e.dfStdout("apply")
	if err != nil {
		t.Fatalf("apply of the embedded default: %v\n%s%s", err, stdout, stderr)
	}
	if strings.Contains(stderr, "deny rule") {
		t.Errorf("the embedded default warns of an unfenced family:\n%s", stderr)
	}
	if s := e.statusJSON(); len(s.Warnings) != 0 {
		t.Errorf("status of the embedded default warns: %q", s.Warnings)
	}
}
