package policy

import (
	"bytes"
	"io"
	"os"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// TestYAMLSyntaxErrors checks that a YAML syntax error is reported at the
// line and column of the mistake, with what to do, rather than at the line
// where the YAML decoder's context starts.
func TestYAMLSyntaxErrors(t *testing.T) {
	head := "version: 1\nnetworks:\n  - match: {name: \"*\"}\n    egress:\n"
	const indent = "; check the indentation of this line against the list or mapping above"
	tests := []struct {
		name, src, want string
	}{
		// The decoder said 5:1: found character that cannot start any token.
		{"tab before a rule", head + "\t- deny: any\n", "p.yaml:5:1: invalid YAML: a tab indents this line; YAML does not allow tabs for indentation; use spaces"},
		{"tab deep in a rule list", head + "      - allow: any\n        proto: tcp\n      \t  ports: [53]\n", "p.yaml:7:7: invalid YAML: a tab indents this line; YAML does not allow tabs for indentation; use spaces"},
		{"tabs for the whole indentation", head + "      - allow: any\n        proto: tcp\n\t\tports: [53]\n", "p.yaml:7:1: invalid YAML: a tab indents this line; YAML does not allow tabs for indentation; use spaces"},
		{"tab before a top key", "version: 1\n\tnetworks: []\n", "p.yaml:2:1: invalid YAML: a tab indents this line; YAML does not allow tabs for indentation; use spaces"},
		// The decoder said 5:1: found character that cannot start any token.
		{"unquoted @list", head + "      - allow: @private\n", "p.yaml:5:16: invalid YAML: an unquoted value cannot start with '@'; quote it: allow: \"@private\""},
		{"unquoted @list in a flow list", head + "      - deny: [10.0.0.0/8, @private]\n", "p.yaml:5:28: invalid YAML: an unquoted value cannot start with '@'; quote it: \"@private\""},
		{"unquoted @list as a list entry", head + "      - deny:\n          - @private # LAN\n", "p.yaml:6:13: invalid YAML: an unquoted value cannot start with '@'; quote it: - \"@private\""},
		{"unquoted *", head + "      - deny: *\n", "p.yaml:5:15: invalid YAML: an unquoted value cannot start with '*'; quote it: deny: \"*\""},
		{"unquoted * in a name", "version: 1\nnetworks:\n  - match: {name: *}\n", "p.yaml:3:19: invalid YAML: an unquoted value cannot start with '*'; quote it: \"*\""},
		{"unknown alias", "version: 1\nnetworks: *nets\n", "p.yaml:2:11: invalid YAML: an unquoted value cannot start with '*'; quote it: networks: \"*nets\""},
		{"empty anchor", head + "      - deny: &\n", "p.yaml:5:15: invalid YAML: an unquoted value cannot start with '&'; quote it: deny: \"&\""},
		{"backtick", head + "      - deny: `10.0.0.0/8`\n", "p.yaml:5:15: invalid YAML: an unquoted value cannot start with '`'; quote it: deny: \"`10.0.0.0/8`\""},
		{"percent", head + "      - allow: any\n        comment: %50 of the LAN\n", "p.yaml:6:18: invalid YAML: an unquoted value cannot start with '%'; quote it: comment: \"%50 of the LAN\""},
		{"pipe", head + "      - allow: any\n        comment: |proxy\n", "p.yaml:6:18: invalid YAML: an unquoted value cannot start with '|'; quote it: comment: \"|proxy\""},
		{"greater than", head + "      - allow: any\n        comment: >80 ports\n", "p.yaml:6:18: invalid YAML: an unquoted value cannot start with '>'; quote it: comment: \">80 ports\""},
		{"colon in a value", "version: 1\nnetworks: a: b\n", "p.yaml:2:11: invalid YAML: an unquoted value cannot contain \": \"; quote it: networks: \"a: b\""},
		// The decoder said 2:1: did not find expected '-' indicator.
		{"key at the list's indentation", "version: 1\nnetworks:\n  - match: {name: x}\n  egress: []\n", "p.yaml:4:3: invalid YAML: this line is indented 2 spaces where the mapping at line 3 has 4" + indent},
		{"rule indented one short", head + "      - allow: any\n     - deny: any\n", "p.yaml:6:6: invalid YAML: this line is indented 5 spaces where the list at line 5 has 6" + indent},
		{"rule indented one short in an indentless list", "version: 1\nnetworks:\n- match: {name: x}\n  egress:\n   - allow: any\n  - deny: any\n", "p.yaml:6:3: invalid YAML: this line is indented 2 spaces where the list at line 5 has 3" + indent},
		{"key indented one more", head + "      - allow: any\n         proto: tcp\n", "p.yaml:6:10: invalid YAML: this line is indented 9 spaces where the mapping at line 5 has 8" + indent},
		{"indented top key", "version: 1\n  networks: []\n", "p.yaml:2:3: invalid YAML: this line is indented 2 spaces where the mapping at line 1 has 0" + indent},
		{"a mapping where a list is expected", head + "      deny: any\n      - allow: any\n", "p.yaml:6:7: invalid YAML: a list entry where the mapping at line 5 expects a key" + indent},
		{"a mapping where sections are expected", "version: 1\nnetworks:\n  match: {name: x}\n  - egress: []\n", "p.yaml:4:3: invalid YAML: a list entry where the mapping at line 3 expects a key" + indent},
		{"a key where the list expects an entry", "version: 1\nnetworks:\n  - {match: {name: x}}\n  egress: []\n", "p.yaml:4:3: invalid YAML: a key where the list at line 3 expects an entry (\"- \")" + indent},
		{"only a mapping where a list is expected", head + "      deny: any\n", "p.yaml:5:7: networks[1].egress: expected a list of rules, found a mapping"},
		// The decoder said 5:1: did not find expected ',' or ']'.
		{"ports unclosed", head + "      - deny: any\n        ports: [53\n", "p.yaml:6:16: invalid YAML: the list that opens here is not closed; add ']'"},
		{"ports unclosed before the next rule", head + "      - deny: any\n        ports: [53\n      - deny: any\n", "p.yaml:6:16: invalid YAML: the list that opens here is not closed; add ']'"},
		{"match unclosed", "version: 1\nnetworks:\n  - match: {name: x, subnet: [10.0.0.0/8]\n    egress: []\n", "p.yaml:3:12: invalid YAML: the mapping that opens here is not closed; add '}'"},
		{"quote unclosed", "version: 1\nnetworks:\n  - match: {name: \"app}\n", "p.yaml:3:19: invalid YAML: the quoted value that starts here is not closed; add the closing \""},
		{"quote unclosed in a block", head + "      - allow: any\n        comment: 'proxy\n      - deny: any\n", "p.yaml:6:18: invalid YAML: the quoted value that starts here is not closed; add the closing '"},
		{"second document unclosed", "version: 1\nnetworks: [{match: {name: x}}]\n---\n[unclosed\n", "p.yaml:4:1: invalid YAML: the list that opens here is not closed; add ']'"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("p.yaml", []byte(tt.src), Options{})
			if err == nil || err.Error() != tt.want {
				t.Errorf("source:\n%s\nerror:\n%v\nwant:\n%s", tt.src, err, tt.want)
			}
		})
	}
}

// TestYAMLSyntaxValid checks that diagnoseYAML finds nothing wrong in
// valid YAML of every style a policy may use, so that it cannot point away
// from a real mistake that comes after.
func TestYAMLSyntaxValid(t *testing.T) {
	seed, err := os.ReadFile("testdata/seed.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, src := range []string{
		string(seed),
		string(DefaultYAML),
		"# a comment\nversion: 1 # one\n\nnetworks:\n- match: {name: x}\n  egress:\n  - allow: any\n  - deny: [\"@private\", '*']\n",
		"version: 1\nlists:\n  m: &m [10.0.0.0/8]\nnetworks: [{match: {name: x}, egress: [{deny: *m}]}]\n",
		"version: 1\nnetworks:\n  - match:\n      name: \"*\"\n    egress:\n      - allow: any\n        comment: |\n          a proxy\n          \twith a tab\n      - deny: [\n          10.0.0.0/8,\n          \"@private\",\n        ]\n        comment: a long\n          comment\n",
		"version: 1\nnetworks:\n  - match: {name: x}\n    egress:\n      - - nested\n        - list\n      - ? complex\n        : key\n",
		"version: 1\nnetworks:\n  - match: {name: \"multi\n      line\"}\n",
		"%YAML 1.1\n---\nversion: 1\nnetworks: []\n...\n",
	} {
		var n yaml.Node
		if err := yaml.Unmarshal([]byte(src), &n); err != nil {
			t.Errorf("source:\n%s\nis not valid YAML: %v", src, err)
		}
		if e := diagnoseYAML("p.yaml", []byte(src)); e != nil {
			t.Errorf("source:\n%s\ndiagnosed: %v", src, e)
		}
	}
}

// TestYAMLSyntaxDeep checks that a policy of a million nested list entries
// on one line is refused at once, without a deep recursion.
func TestYAMLSyntaxDeep(t *testing.T) {
	src := "version: 1\nnetworks: " + strings.Repeat("- ", 1<<20) + "x\n"
	_, err := Parse("p.yaml", []byte(src), Options{})
	want := "p.yaml:2:11: invalid YAML: a list entry cannot start on the line of its key; start it on the next line, indented"
	if err == nil || err.Error() != want {
		t.Errorf("error: %.200v\nwant: %s", err, want)
	}
}

// FuzzDiagnoseValid checks that diagnoseYAML finds nothing wrong in what
// the YAML decoder accepts: a policy-like stream of one document holding a
// mapping. Left out are tags and a first line indented more than later
// ones, which libyaml accepts and no policy has.
func FuzzDiagnoseValid(f *testing.F) {
	seed, _ := os.ReadFile("testdata/seed.yaml")
	f.Add(seed)
	f.Add(DefaultYAML)
	f.Add([]byte("a:\n- b\n- c: |\n    d\n  e: [f,\n    g]\nh: 'i\n  j'\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		var doc, more yaml.Node
		dec := yaml.NewDecoder(bytes.NewReader(data))
		if dec.Decode(&doc) != nil || len(doc.Content) != 1 || doc.Content[0].Kind != yaml.MappingNode || doc.Content[0].Column != 1 ||
			dec.Decode(&more) != io.EOF || bytes.ContainsRune(data, '!') {
			return
		}
		if e := diagnoseYAML("f.yaml", data); e != nil {
			t.Fatalf("valid YAML diagnosed: %v", e)
		}
	})
}
