package policy

import (
	"strings"
	"testing"
)

// TestLabelRules reads container labels, good and bad: rules come back
// with their positions in the label, errors name the place in the label.
func TestLabelRules(t *testing.T) {
	pol, err := Parse("p.yaml", []byte(`version: 1
lists:
  proxy: [192.168.100.1]
networks:
  - match: {name: "*"}
    egress_default: allow
`), Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, label string
		rules       []string // Rule ID and address text
		err         string
	}{
		{"flow", `[{deny: 192.168.100.1, comment: no proxy}]`, []string{"egress 1 deny 192.168.100.1"}, ""},
		{"block", "- allow: \"@proxy\"\n  proto: tcp\n  ports: [3128]\n- deny: any\n", []string{"egress 1 allow @proxy", "egress 2 deny any"}, ""},
		{"self", `[{allow: self}]`, []string{"egress 1 allow self"}, ""},
		{"empty", ``, nil, "label dockerfence.egress:1:1: the label is empty; expected a list of rules"},
		{"not a list", `deny: 10.0.0.0/8`, nil, "label dockerfence.egress:1:1: rules: expected a list of rules, found a mapping"},
		{"unknown list", `[{deny: "@nope"}]`, nil, `label dockerfence.egress:1:9: rules[1].deny: unknown list "@nope"`},
		{"host bits", "- deny: 192.168.1.0/16\n", nil, "label dockerfence.egress:1:9: rules[1].deny: 192.168.1.0/16 has host bits set"},
		{"bad yaml", `[{deny: 10.0.0.1}`, nil, "label dockerfence.egress:1:"},
		{"unknown key", `[{deny: 10.0.0.1, port: 80}]`, nil, `label dockerfence.egress:1:19: rules[1]: unknown key "port"`},
		{"alias", "- &a {deny: 10.0.0.1}\n- *a\n", nil, "aliases are not allowed"},
		{"two documents", "- deny: 10.0.0.1\n---\n- deny: 10.0.0.2\n", nil, "a second YAML document"},
		{"nul", "[{deny: 10.0.0.1}]\x00", nil, "NUL byte"},
		{"too many", "[" + strings.Repeat("{deny: 10.0.0.1},", maxLabelRules+1) + "]", nil, "at most 256"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rules, err := pol.LabelRules(tc.label)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v; want one containing %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, r := range rules {
				got = append(got, r.ID()+" "+r.Verdict.String()+" "+r.Addrs.Text)
			}
			if strings.Join(got, "\n") != strings.Join(tc.rules, "\n") {
				t.Errorf("rules:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tc.rules, "\n"))
			}
		})
	}
}

// FuzzLabelRules feeds arbitrary labels to the parser: it must never
// panic, never return rules with an error, place every rule in the label,
// and answer the same twice.
func FuzzLabelRules(f *testing.F) {
	pol, err := Parse("p.yaml", []byte("version: 1\nnetworks:\n  - match: {name: \"*\"}\n"), Options{})
	if err != nil {
		f.Fatal(err)
	}
	for _, s := range []string{
		`[{deny: 192.168.100.1, comment: no proxy}]`,
		"- allow: \"@private\"\n  proto: tcp\n  ports: [3128, \"8000-8080\"]\n",
		`[{allow: self}, {deny: any}]`,
		"- &a {deny: 10.0.0.1}\n- *a\n",
		`[{deny: fd00::/8, proto: icmpv6}]`,
		"\t- deny: 1.2.3.4",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, label string) {
		rules, err := pol.LabelRules(label)
		if err != nil && rules != nil {
			t.Fatalf("rules and an error for %q", label)
		}
		again, err2 := pol.LabelRules(label)
		if len(again) != len(rules) || (err == nil) != (err2 == nil) || err != nil && err.Error() != err2.Error() {
			t.Fatalf("two reads of %q differ: %d rules, %v; then %d, %v", label, len(rules), err, len(again), err2)
		}
		for _, r := range rules {
			if r.Pos.File != "label "+EgressLabel {
				t.Fatalf("rule position %v is not in the label", r.Pos)
			}
		}
	})
}
