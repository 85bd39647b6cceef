package daemon

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/dockerfence/dockerfence/dnslearn"
	"github.com/dockerfence/dockerfence/fence"
	"github.com/dockerfence/dockerfence/nft"
	"github.com/dockerfence/dockerfence/policy"
	"github.com/dockerfence/dockerfence/status"
	"github.com/google/nftables"
)

type recordCommits struct{ txs []*nft.Transaction }

func (r *recordCommits) Commit(tx *nft.Transaction) error {
	r.txs = append(r.txs, tx)
	return nil
}

// TestNameSetsOneTransaction: a batch of learned elements of two lists and
// both families goes to the kernel as one transaction, each address into
// its list's set of its family with its timeout; a list the table no
// longer has is skipped.
func TestNameSetsOneTransaction(t *testing.T) {
	res := &fence.Result{Table: &nft.Table{Name: "dockerfence"}, NameSets: []fence.NameSet{
		{List: "github", Names: []string{"github.com"}, Set4: "names_github_4", Set6: "names_github_6"},
		{List: "pypi", Names: []string{"pypi.org"}, Set4: "names_pypi_4", Set6: "names_pypi_6"},
	}}
	k := &recordCommits{}
	s := nameSets{k: k, table: func() *fence.Result { return res }}
	a := netip.MustParseAddr
	err := s.Add([]dnslearn.Element{
		{Key: "github", Addr: a("140.82.121.3"), Timeout: time.Minute},
		{Key: "github", Addr: a("2001:db8::3"), Timeout: time.Minute},
		{Key: "pypi", Addr: a("151.101.0.223"), Timeout: 2 * time.Minute},
		{Key: "github", Addr: a("140.82.121.4"), Timeout: time.Hour},
		{Key: "gone", Addr: a("192.0.2.1"), Timeout: time.Minute},
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(k.txs) != 1 {
		t.Fatalf("%d transactions, want 1", len(k.txs))
	}
	var got []string
	for _, op := range k.txs[0].Ops {
		if op.Kind != nft.OpAddElements {
			t.Errorf("op %v on %s, want adds only", op.Kind, op.Name)
		}
		got = append(got, op.Name+" "+strings.Join(op.Items, ", "))
	}
	want := "names_github_4 140.82.121.3 timeout 1m, 140.82.121.4 timeout 1h | names_github_6 2001:db8::3 timeout 1m | names_pypi_4 151.101.0.223 timeout 2m"
	if strings.Join(got, " | ") != want {
		t.Errorf("ops:\n%s\nwant\n%s", strings.Join(got, " | "), want)
	}
	if err := s.Add([]dnslearn.Element{{Key: "gone", Addr: a("192.0.2.1"), Timeout: time.Minute}}); err != nil || len(k.txs) != 1 {
		t.Errorf("elements of a list the table does not have: %v, %d transactions", err, len(k.txs))
	}
}

// TestNamesRules: the learner learns the names of the lists the table
// uses, keyed by list, and nothing without names.
func TestNamesRules(t *testing.T) {
	pol := &policy.Policy{Settings: policy.DefaultSettings()}
	if r, err := namesRules(pol, &fence.Result{Table: &nft.Table{}}); r != nil || err != nil {
		t.Errorf("without names: %v, %v", r, err)
	}
	r, err := namesRules(pol, &fence.Result{NameSets: []fence.NameSet{{List: "github", Names: []string{"github.com", "*.github.com"}}}})
	if err != nil || r == nil || len(r.Keys) != 1 || r.Keys[0] != "github" {
		t.Fatalf("namesRules = %+v, %v", r, err)
	}
	for name, want := range map[string]int{"github.com": 1, "api.github.com": 1, "example.com": 0, "notgithub.com": 0} {
		if got := len(r.Matcher.Match(name)); got != want {
			t.Errorf("%s matches %d lists, want %d", name, got, want)
		}
	}
	if r.Bounds.Min != 60*time.Second || r.Bounds.Max != 24*time.Hour || r.Hold != 250*time.Millisecond {
		t.Errorf("bounds %+v, hold %v: want the defaults", r.Bounds, r.Hold)
	}
}

// TestNamesStatus: status lists each names list with the addresses
// learned, the name each was learned for, its time left and whether the
// kernel's set holds it, and the packets of the rules that use the list.
func TestNamesStatus(t *testing.T) {
	now := time.Date(2026, 12, 7, 11, 0, 0, 0, time.UTC)
	l := dnslearn.New(dnslearn.Config{Sets: &recordSets{}, Now: func() time.Time { return now }})
	l.SetRules(&dnslearn.Rules{Keys: []string{"github"}})
	if err := dnslearn.Remember(l, "api.github.com", dnslearn.Element{Key: "github", Addr: netip.MustParseAddr("140.82.121.3"), Timeout: 90 * time.Second}); err != nil {
		t.Fatal(err)
	}
	res := &fence.Result{Table: &nft.Table{Name: "dockerfence"}, NameSets: []fence.NameSet{
		{List: "github", Names: []string{"github.com", "*.github.com"}, Set4: "names_github_4", Set6: "names_github_6"}}}
	st := &nft.State{Sets: []nft.SetState{{Name: "names_github_4", Elems: []nftables.SetElement{{Key: []byte{140, 82, 121, 3}}, {Key: []byte{140, 82, 121, 4}, IntervalEnd: true}}}}}
	s := &status.Status{Networks: []status.NetworkStatus{{Rules: []status.RuleStatus{
		{ID: "egress 1", Match: "@github tcp/443", Packets: 7}, {ID: "egress 2", Match: "@private", Packets: 100}}}}}
	got := namesStatus(l, res, st, s, now.Add(30*time.Second))
	if len(got) != 1 || got[0].Hits != 7 || len(got[0].Learned) != 1 {
		t.Fatalf("namesStatus = %+v", got)
	}
	if a := got[0].Learned[0]; a.Addr != "140.82.121.3" || a.Name != "api.github.com" || a.TTLLeft != 60 || !a.InKernel {
		t.Errorf("learned %+v", a)
	}
}

type recordSets struct{}

func (recordSets) Add([]dnslearn.Element) error { return nil }

// TestMentionsList matches a list's name as a whole name in a rule's
// match text.
func TestMentionsList(t *testing.T) {
	for _, c := range []struct {
		match, list string
		want        bool
	}{
		{"@github", "github", true},
		{"@github", "git", false},
		{"@github, @git", "git", true},
		{"@git-hub", "git", false},
		{"@private", "github", false},
	} {
		if got := mentionsList(c.match, c.list); got != c.want {
			t.Errorf("mentionsList(%q, %q) = %v, want %v", c.match, c.list, got, c.want)
		}
	}
}
