package daemon

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/dockerfence/dockerfence/dnslearn"
	"github.com/dockerfence/dockerfence/fence"
	"github.com/dockerfence/dockerfence/nft"
	"github.com/dockerfence/dockerfence/nft/fake"
	"github.com/dockerfence/dockerfence/policy"
	"github.com/dockerfence/dockerfence/status"
	"github.com/google/nftables"
	"golang.org/x/sys/unix"
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

// TestSeedLearner: the addresses the name sets held when the daemon
// started, with their time left, are the learner's (inherited), and status
// shows them; interval ends, expired elements and other sets are not.
func TestSeedLearner(t *testing.T) {
	now := time.Date(2026, 12, 7, 11, 0, 0, 0, time.UTC)
	l := dnslearn.New(dnslearn.Config{Sets: &recordSets{}, Now: func() time.Time { return now }})
	l.SetRules(&dnslearn.Rules{Keys: []string{"github"}})
	res := &fence.Result{Table: &nft.Table{Name: "dockerfence"}, NameSets: []fence.NameSet{
		{List: "github", Names: []string{"github.com"}, Set4: "names_github_4", Set6: "names_github_6"}}}
	st := &nft.State{Sets: []nft.SetState{
		{Name: "names_github_4", Dumped: true, Elems: []nftables.SetElement{
			{Key: []byte{140, 82, 121, 3}, Timeout: time.Hour, Expires: 20 * time.Minute},
			{Key: []byte{140, 82, 121, 4}, IntervalEnd: true},
			{Key: []byte{140, 82, 121, 9}, Timeout: time.Hour}, // no time left given: expiring
		}},
		{Name: "names_github_6", Dumped: true, Elems: []nftables.SetElement{
			{Key: netip.MustParseAddr("2606:50c0:8000::154").AsSlice(), Timeout: time.Hour, Expires: time.Minute},
		}},
		{Name: "private_4", Dumped: true, Elems: []nftables.SetElement{{Key: []byte{10, 0, 0, 0}}}},
	}}
	if n := seedLearner(l, res, st); n != 2 {
		t.Errorf("seedLearner told %d addresses, want 2", n)
	}
	got := namesStatus(l, res, st, &status.Status{}, now)
	if len(got) != 1 || len(got[0].Learned) != 2 {
		t.Fatalf("namesStatus = %+v", got)
	}
	if a := got[0].Learned[0]; a.Addr != "140.82.121.3" || !a.Inherited || a.TTLLeft != 1200 || !a.InKernel {
		t.Errorf("inherited %+v", a)
	}
	var text strings.Builder
	status.WriteText(&text, status.Status{Names: got})
	if !strings.Contains(text.String(), "(in the set when the daemon started)") {
		t.Errorf("status text does not say where the address came from:\n%s", text.String())
	}
}

// TestNameElementsOfEditedList: an element learned under other names of
// its list (another tag) does not go into the list's sets.
func TestNameElementsOfEditedList(t *testing.T) {
	res := &fence.Result{Table: &nft.Table{Name: "dockerfence"}, NameSets: []fence.NameSet{
		{List: "gh", Names: []string{"new.example"}, Set4: "names_gh_4", Set6: "names_gh_6"}}}
	tx := NameElementsTx(res, []dnslearn.Element{
		{Key: "gh", Addr: netip.MustParseAddr("203.0.113.1"), Timeout: time.Minute, Tag: fence.NamesTag([]string{"old.example"})},
		{Key: "gh", Addr: netip.MustParseAddr("203.0.113.2"), Timeout: time.Minute, Tag: fence.NamesTag([]string{"new.example"})},
	})
	text := fmt.Sprint(tx)
	if len(tx.Ops) == 0 || strings.Contains(text, "203.0.113.1") || !strings.Contains(text, "203.0.113.2") {
		t.Errorf("transaction %s: want 203.0.113.2 alone", text)
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

// namesTable returns a fence result whose table has the name sets of the
// lists github and pypi, and a fake kernel that holds the table.
func namesTable(t *testing.T) (*fence.Result, *fake.Kernel) {
	t.Helper()
	res := &fence.Result{Table: &nft.Table{Name: "dockerfence", Priority: -10}, NameSets: []fence.NameSet{
		{List: "github", Names: []string{"github.com"}, Set4: "names_github_4", Set6: "names_github_6"},
		{List: "pypi", Names: []string{"pypi.org"}, Set4: "names_pypi_4", Set6: "names_pypi_6"},
	}}
	for _, ns := range res.NameSets {
		res.Table.Sets = append(res.Table.Sets,
			&nft.Set{Name: ns.Set4, Key: nft.KeyIPv4, Timeout: true, Owner: nft.OwnedByRuntime},
			&nft.Set{Name: ns.Set6, Key: nft.KeyIPv6, Timeout: true, Owner: nft.OwnedByRuntime})
	}
	k := fake.New()
	if _, err := k.Apply(res.Table); err != nil {
		t.Fatal(err)
	}
	return res, k
}

// TestNameSetsOneBadSet: when the kernel refuses every commit that
// touches one name set, the batch is committed again set by set: the
// other sets learn their addresses, and the error names the bad set and
// gives back its elements as failed.
func TestNameSetsOneBadSet(t *testing.T) {
	res, k := namesTable(t)
	touches := func(set string) func(*nft.Transaction) error {
		return func(tx *nft.Transaction) error {
			for _, op := range tx.Ops {
				if op.Name == set {
					return unix.ENOENT
				}
			}
			return nil
		}
	}
	k.Refuse(touches("names_pypi_4"))
	s := nameSets{k: k, table: func() *fence.Result { return res }}
	a := netip.MustParseAddr
	pypi := dnslearn.Element{Key: "pypi", Addr: a("151.101.0.223"), Timeout: time.Minute}
	before := len(k.Transactions())
	err := s.Add([]dnslearn.Element{
		{Key: "github", Addr: a("140.82.121.3"), Timeout: time.Minute},
		pypi,
		{Key: "github", Addr: a("2001:db8::3"), Timeout: time.Minute, Refresh: true},
		{Key: "pypi", Addr: a("2001:db8::7"), Timeout: time.Minute},
	})
	var partial *dnslearn.PartialError
	if !errors.As(err, &partial) {
		t.Fatalf("Add = %v, want a PartialError", err)
	}
	if msg := err.Error(); !strings.Contains(msg, "names_pypi_4") || strings.Contains(msg, "names_github") || strings.Contains(msg, "names_pypi_6 ") {
		t.Errorf("error %q, want only names_pypi_4 named as failed", msg)
	}
	if !errors.Is(err, unix.ENOENT) {
		t.Errorf("error %v does not wrap the kernel's ENOENT", err)
	}
	if len(partial.Failed) != 1 || partial.Failed[0] != pypi {
		t.Errorf("failed %+v, want %+v", partial.Failed, pypi)
	}
	for set, want := range map[string]string{"names_github_4": "140.82.121.3", "names_github_6": "2001:db8::3", "names_pypi_6": "2001:db8::7"} {
		if got := k.Elements("dockerfence", set); len(got) != 1 || !strings.HasPrefix(got[0], want+" timeout 1m0s") {
			t.Errorf("%s holds %q, want %s", set, got, want)
		}
	}
	if got := k.Elements("dockerfence", "names_pypi_4"); len(got) != 0 {
		t.Errorf("names_pypi_4 holds %q", got)
	}
	if n := len(k.Transactions()) - before; n != 3 {
		t.Errorf("%d transactions committed, want 3, one a set but for the bad one", n)
	}

	// Every set bad: a plain error that names them all.
	k.Refuse(func(*nft.Transaction) error { return unix.ENOENT })
	err = s.Add([]dnslearn.Element{pypi, {Key: "github", Addr: a("140.82.121.4"), Timeout: time.Minute}})
	if err == nil || errors.As(err, &partial) || !strings.Contains(err.Error(), "names_pypi_4, names_github_4") {
		t.Errorf("Add with every set refused = %v, want an error naming both sets", err)
	}
	// One set only: its error, named.
	err = s.Add([]dnslearn.Element{pypi})
	if err == nil || errors.As(err, &partial) || !strings.Contains(err.Error(), "names set names_pypi_4") {
		t.Errorf("Add of one refused set = %v", err)
	}
	// A batch that fails whole but goes in set by set learns everything.
	fails := 1
	k.Refuse(func(*nft.Transaction) error {
		if fails > 0 {
			fails--
			return unix.ENOBUFS
		}
		return nil
	})
	if err := s.Add([]dnslearn.Element{pypi, {Key: "github", Addr: a("140.82.121.4"), Timeout: time.Minute}}); err != nil {
		t.Errorf("Add after a passing failure = %v", err)
	}
	if got := k.Elements("dockerfence", "names_pypi_4"); len(got) != 1 {
		t.Errorf("names_pypi_4 holds %q after the retry", got)
	}
}

// TestNameSetsRefresh: the fake kernel keeps an element's old timeout on
// an add, as Linux before 6.10 does; an element marked Refresh ends with
// its new timeout there all the same, shorter or longer, and one that is
// not in the set, or expired, is added. An element not marked keeps its
// old timeout: only the learner's memory says which need the refresh.
func TestNameSetsRefresh(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		res, k := namesTable(t)
		s := nameSets{k: k, table: func() *fence.Result { return res }}
		a := netip.MustParseAddr
		if err := s.Add([]dnslearn.Element{
			{Key: "github", Addr: a("140.82.121.1"), Timeout: time.Hour},
			{Key: "github", Addr: a("140.82.121.2"), Timeout: time.Minute},
			{Key: "github", Addr: a("140.82.121.3"), Timeout: time.Second},
			{Key: "github", Addr: a("140.82.121.5"), Timeout: time.Hour},
		}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(2 * time.Second) // 140.82.121.3 expires
		if err := s.Add([]dnslearn.Element{
			{Key: "github", Addr: a("140.82.121.1"), Timeout: 30 * time.Second, Refresh: true},
			{Key: "github", Addr: a("140.82.121.2"), Timeout: 2 * time.Hour, Refresh: true},
			{Key: "github", Addr: a("140.82.121.3"), Timeout: time.Minute, Refresh: true},
			{Key: "github", Addr: a("140.82.121.4"), Timeout: time.Minute, Refresh: true},
			{Key: "github", Addr: a("140.82.121.5"), Timeout: time.Minute},
		}); err != nil {
			t.Fatal(err)
		}
		want := []string{
			"140.82.121.1 timeout 30s expires 30s",
			"140.82.121.2 timeout 2h0m0s expires 2h0m0s",
			"140.82.121.3 timeout 1m0s expires 1m0s",
			"140.82.121.4 timeout 1m0s expires 1m0s",
			"140.82.121.5 timeout 1h0m0s expires 59m58s",
		}
		if got := k.Elements("dockerfence", "names_github_4"); strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Errorf("names_github_4 holds\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
	})
}
