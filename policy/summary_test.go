package policy

import (
	"os"
	"testing"
)

func TestSummary(t *testing.T) {
	for _, tc := range []struct{ src, want string }{{
		src: `version: 1
lists:
  office: [192.168.10.0/24]
networks:
  - match: {name: app}
    egress:
      - allow: "@office"
      - deny: "@private"
      - deny: "@office"
    host:
      - allow: any
        proto: udp
        ports: [53]
  - match: {name: "*"}
    egress:
      - deny: "@metadata"
`,
		want: "2 sections, 5 rules, lists used: metadata, office, private",
	}, {
		src:  "version: 1\nnetworks:\n  - match: {name: \"*\"}\n    egress:\n      - allow: \"@resolvers\"\n",
		want: "1 sections, 1 rules, lists used: resolvers (from " + os.DevNull + ")",
	}, {
		src:  "version: 1\nlists:\n  resolvers: [10.0.0.1]\nnetworks:\n  - match: {name: \"*\"}\n    egress:\n      - allow: \"@resolvers\"\n",
		want: "1 sections, 1 rules, lists used: resolvers",
	}, {
		src:  "version: 1\nnetworks:\n  - match: {bridge: br-x}\n",
		want: "1 sections, 0 rules, lists used: -",
	}} {
		p, err := Parse("p.yaml", []byte(tc.src), Options{ResolvConf: os.DevNull})
		if err != nil {
			t.Fatal(err)
		}
		if got := p.Summary(); got != tc.want {
			t.Errorf("Summary = %q, want %q", got, tc.want)
		}
	}
}
