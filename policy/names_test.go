package policy

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/dockerfence/dockerfence/dnsname"
)

// TestNames reads lists of names and inline names in the egress rules of
// network and container sections, and checks what the model gives the
// compiler: each rule's lists of names, their stable names, NameLists and
// the summary.
func TestNames(t *testing.T) {
	src := `version: 1
settings: {dns_min_ttl: 30s, dns_max_ttl: 12h, dns_hold: 100ms}
lists:
  office: [198.51.100.0/24]
  github: {names: [GitHub.com., "*.github.com", github.com]}
  spare: {names: [spare.example]}
networks:
  - match: {name: "*"}
    egress:
      - allow: "@github"
        proto: tcp
        ports: [443]
      - allow: ["@office", "@github", {names: ["*.s3.amazonaws.com", pypi.org]}, 192.0.2.1]
      - allow: {names: [pypi.org, "*.S3.amazonaws.com"]}
        ports: [80]
      - deny: any
containers:
  - match: {name: web}
    egress:
      - allow: {names: [api.example.com]}
`
	pol, err := Parse("p.yaml", []byte(src), testOpts(t))
	if err != nil {
		t.Fatal(err)
	}
	s := pol.Settings
	if s.DNSMinTTL != 30*time.Second || s.DNSMaxTTL != 12*time.Hour || s.DNSHold != 100*time.Millisecond {
		t.Errorf("settings %v %v %v", s.DNSMinTTL, s.DNSMaxTTL, s.DNSHold)
	}
	gh := pol.Lists["github"]
	if gh.Names == nil || len(gh.Prefixes) != 0 || gh.Names.Inline || gh.Names.SetName() != "n_github" || gh.Names.Pos.String() != "p.yaml:5:3" {
		t.Fatalf("@github = %+v", gh)
	}
	if want := []dnsname.Pattern{"github.com", "*.github.com"}; !cmp.Equal(gh.Names.Patterns, want) {
		t.Errorf("@github patterns %v, want %v", gh.Names.Patterns, want)
	}
	rules := pol.Sections[0].Rules(Egress)
	if r := rules[0]; len(r.Addrs.Names) != 1 || r.Addrs.Names[0] != gh.Names || len(r.Addrs.Lists) != 0 || r.Addrs.Text != "@github" {
		t.Errorf("rule 1 addrs = %+v", r.Addrs)
	}
	r2, r3 := rules[1].Addrs, rules[2].Addrs
	if !cmp.Equal(r2.Lists, []string{"office"}) || len(r2.Prefixes) != 1 || len(r2.Names) != 2 || r2.Names[0] != gh.Names {
		t.Fatalf("rule 2 addrs = %+v", r2)
	}
	inline := r2.Names[1]
	if !inline.Inline || !strings.HasPrefix(inline.Name, "inline.") || inline.Pos.String() != "p.yaml:13:39" {
		t.Errorf("inline list = %+v", inline)
	}
	// The same patterns in another order and case are the same list.
	if len(r3.Names) != 1 || r3.Names[0].Name != inline.Name {
		t.Errorf("rule 3's inline list %+v, want the name %s", r3.Names, inline.Name)
	}
	if want := `[@office, @github, {names: [*.s3.amazonaws.com, pypi.org]}, 192.0.2.1]`; r2.Text != want {
		t.Errorf("rule 2 text %q, want %q", r2.Text, want)
	}
	if got := pol.Resolve(r2, Network{}); len(got) != 2 {
		t.Errorf("Resolve = %v; want the addresses of @office and 192.0.2.1 only", got)
	}
	var names []string
	for _, l := range pol.NameLists() {
		names = append(names, l.Name)
	}
	web := pol.Containers[0].Egress.Rules[0].Addrs.Names[0]
	want := []string{"github", inline.Name, web.Name, "spare"}
	if inline.Name > web.Name {
		want[1], want[2] = want[2], want[1]
	}
	if !cmp.Equal(names, want) {
		t.Errorf("NameLists = %v, want %v", names, want)
	}
	m := NameMatcher(pol.NameLists())
	if got := m.Match("API.github.com."); !cmp.Equal(got, []string{"github"}) {
		t.Errorf("NameMatcher: api.github.com matches %v", got)
	}
	if got := m.Match("bucket.s3.amazonaws.com"); len(got) != 1 || got[0] != inline.Name {
		t.Errorf("NameMatcher: bucket.s3.amazonaws.com matches %v", got)
	}
	if !pol.UsesNames() {
		t.Error("UsesNames = false")
	}
	if got, want := pol.Summary(), "1 sections, 1 container sections, 5 rules, lists used: github, office, 5 names in 3 name lists"; got != want {
		t.Errorf("Summary = %q, want %q", got, want)
	}
}

// TestNamesInLabel reads names in a container's label: the policy's lists
// by name and inline lists of the label's own.
func TestNamesInLabel(t *testing.T) {
	pol, err := Parse("p.yaml", []byte("version: 1\nlists:\n  github: {names: [github.com]}\nnetworks:\n  - match: {name: \"*\"}\n"), testOpts(t))
	if err != nil {
		t.Fatal(err)
	}
	rules, err := pol.LabelRules(`[{allow: "@github", ports: [443]}, {allow: {names: [pypi.org]}}, {deny: any}]`)
	if err != nil {
		t.Fatal(err)
	}
	lists := NameListsOf(rules)
	if len(lists) != 2 || lists[0].Name != "github" || !lists[1].Inline || lists[1].Patterns[0] != "pypi.org" {
		t.Errorf("NameListsOf = %+v", lists)
	}
	_, err = pol.LabelRules(`[{allow: {names: ["a.*.example.com"]}}]`)
	if err == nil || !strings.Contains(err.Error(), `label dockerfence.egress:1:19: rules[1].allow.names: "a.*.example.com" has "*" in the middle`) {
		t.Errorf("label with a bad name: %v", err)
	}
}

// TestNamesErrors checks the mistakes of names, each at its position.
func TestNamesErrors(t *testing.T) {
	head := "version: 1\nnetworks:\n  - match: {name: \"*\"}\n    egress:\n"
	lists := func(l string) string {
		return "version: 1\nlists:\n  " + l + "\nnetworks:\n  - match: {name: \"*\"}\n"
	}
	settings := func(s string) string {
		return "version: 1\nsettings: {" + s + "}\nnetworks:\n  - match: {name: \"*\"}\n"
	}
	for _, tc := range []struct{ name, src, want string }{
		{"wildcard in the middle", lists(`gh: {names: [github.com, "api.*.github.com"]}`), `p.yaml:3:28: lists.gh.names: "api.*.github.com" has "*" in the middle; "*" is allowed only as the whole first label (*.example.com)`},
		{"partial wildcard", lists(`gh: {names: ["gh*.github.com"]}`), `p.yaml:3:16: lists.gh.names: "gh*.github.com" has a partial wildcard "gh*"`},
		{"label too long", lists("gh: {names: [" + strings.Repeat("a", 64) + ".com]}"), `p.yaml:3:16: lists.gh.names: "` + strings.Repeat("a", 64)[:64] + `"... has a label of 64 bytes; a label has 1 to 63`},
		{"name too long", lists("gh: {names: [" + strings.Repeat("abc.", 64) + "com]}"), `p.yaml:3:16: lists.gh.names: "abc.abc.`},
		{"empty label", lists("gh: {names: [github..com]}"), `p.yaml:3:16: lists.gh.names: "github..com" has an empty label`},
		{"hyphen", lists("gh: {names: [-x.github.com]}"), `p.yaml:3:16: lists.gh.names: "-x.github.com" has the label "-x", which starts or ends with a hyphen`},
		{"IDN", lists("de: {names: [bücher.de]}"), `p.yaml:3:16: lists.de.names: "bücher.de" is not ASCII; give an internationalized name in its xn-- form, as DNS carries it: xn--bcher-kva.de`},
		{"address in names", lists("gh: {names: [github.com, 140.82.121.4]}"), `p.yaml:3:28: lists.gh.names: "140.82.121.4" is an address, not a name; put addresses in an address list (a list holds names or addresses, not both)`},
		{"name in addresses", lists("gh: [140.82.121.4, github.com]"), `p.yaml:3:22: lists.gh: "github.com" is a DNS name; a list of names is written gh: {names: [github.com]}, and holds names only`},
		{"names and file", lists("gh: {file: x.txt, names: [github.com]}"), `p.yaml:3:21: lists.gh: a list holds addresses (file) or names, not both: the addresses of names are learned from DNS answers and expire, a set of their own; make two lists and name both in the rule, ["@gh", "@gh_names"]`},
		{"empty names", lists("gh: {names: []}"), `p.yaml:3:15: lists.gh.names: empty list; give at least one name`},
		{"names a mapping", lists("gh: {names: {a: b}}"), `p.yaml:3:15: lists.gh.names: expected a list of DNS names, such as [example.com, "*.example.com"], found a mapping`},
		{"star", head + "      - allow: {names: [\"*\"]}\n", `p.yaml:5:25: networks[1].egress[1].allow.names: "*" matches every name; a wildcard needs a name after "*.", such as *.example.com (for every address, use any)`},
		{"inline unknown key", head + "      - allow: {names: [a.com], ttl: 5}\n", `p.yaml:5:33: networks[1].egress[1].allow: unknown key "ttl"; expected one of names`},
		{"inline mapping without names", head + "      - allow: [10.0.0.1, {name: a.com}]\n", `p.yaml:5:27: networks[1].egress[1].allow: expected an address, a CIDR, a list of them, @list, {names: [...]}, self or any, found a mapping without names`},
		{"names in ingress", "version: 1\nlists:\n  gh: {names: [github.com]}\nnetworks:\n  - match: {name: \"*\"}\n    ingress:\n      - allow: \"@gh\"\n", `p.yaml:7:16: networks[1].ingress[1].allow: names (@gh) are not for ingress rules; names are learned from the DNS answers containers get and match the destinations of egress rules only: an ingress rule's addresses are the sources of connections into containers, which no DNS answer to them tells`},
		{"names in host", head[:len(head)-len("egress:\n")] + "host:\n      - allow: {names: [github.com]}\n", `p.yaml:5:16: networks[1].host[1].allow: names ({names: [github.com]}) are not for host rules; names are learned from the DNS answers containers get and match the destinations of egress rules only: a host rule's addresses are the host's own`},
		{"names denied", "version: 1\nlists:\n  gh: {names: [github.com]}\nnetworks:\n  - match: {name: \"*\"}\n    egress:\n      - deny: [10.0.0.1, \"@gh\"]\n", `p.yaml:7:15: networks[1].egress[1].deny: names (@gh) can only be allowed: a deny by name would deny only the addresses learned`},
		{"names in container ingress", "version: 1\nnetworks:\n  - match: {name: \"*\"}\ncontainers:\n  - match: {name: web}\n    ingress:\n      - deny: [10.0.0.1, {names: [a.example]}]\n", `p.yaml:7:15: containers[1].ingress[1].deny: names ({names: [a.example]}) are not for ingress rules`},
		{"name as an address", head + "      - allow: [10.0.0.1, api.github.com]\n", `p.yaml:5:27: networks[1].egress[1].allow: "api.github.com" is a DNS name; names are written {names: [api.github.com]}, or kept in a list of names named as @LIST`},
		{"min TTL zero", settings("dns_min_ttl: 0s"), `p.yaml:2:25: settings.dns_min_ttl: 0s is out of range; expected 1s to 168h (the least time a learned address stays)`},
		{"min TTL a number", settings("dns_min_ttl: 60"), `p.yaml:2:25: settings.dns_min_ttl: "60" is not a duration; expected a number and a unit, such as 60s (the least time a learned address stays)`},
		{"max TTL too long", settings("dns_max_ttl: 720h"), `p.yaml:2:25: settings.dns_max_ttl: 720h is out of range; expected 1s to 168h`},
		{"min above max", settings("dns_min_ttl: 2h, dns_max_ttl: 1h"), `p.yaml:2:25: settings: dns_min_ttl 2h is above dns_max_ttl 1h`},
		{"min above the default max", settings("dns_min_ttl: 48h"), `p.yaml:2:25: settings: dns_min_ttl 48h is above dns_max_ttl 24h`},
		{"max below the default min", settings("dns_max_ttl: 10s"), `p.yaml:2:25: settings: dns_min_ttl 1m is above dns_max_ttl 10s`},
		{"hold too long", settings("dns_hold: 5s"), `p.yaml:2:22: settings.dns_hold: 5s is out of range; expected 1ms to 2s (the longest a DNS answer is held while its addresses are learned)`},
		{"hold a word", settings("dns_hold: short"), `p.yaml:2:22: settings.dns_hold: "short" is not a duration`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("p.yaml", []byte(tc.src), testOpts(t))
			var el ErrorList
			if !errors.As(err, &el) {
				t.Fatalf("error %v, want an ErrorList with %q", err, tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error:\n%v\nwant it to contain:\n%s", err, tc.want)
			}
			if len(el) != 1 {
				t.Errorf("%d errors, want 1:\n%v", len(el), err)
			}
		})
	}
}
