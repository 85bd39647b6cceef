package daemon

import (
	"errors"
	"net/netip"
	"os"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/dockerfence/dockerfence/docker"
	"github.com/dockerfence/dockerfence/nft"
	"github.com/dockerfence/dockerfence/nft/fake"
	"github.com/dockerfence/dockerfence/policy"
	"golang.org/x/sys/unix"
)

// The tests below run the daemon against nft/fake's kernel, which applies
// the same transactions as the real one, and check the table it ends up
// with, not only which applies were asked for.

// startFake starts a harness whose daemon works on a fake kernel, with the
// policy pol.
func startFake(t *testing.T, withDocker bool, pol string) (*harness, *fake.Kernel) {
	t.Helper()
	k := fake.New()
	h := start(t, withDocker, func(c *Config) {
		c.Kernel = k
		if pol != "" {
			c.LoadPolicy = policyLoader(pol)
		}
	})
	return h, k
}

// policyLoader loads the policy pol, always.
func policyLoader(pol string) func() (*policy.Policy, error) {
	return func() (*policy.Policy, error) {
		return policy.Parse("p.yaml", []byte(pol), policy.Options{ResolvConf: os.DevNull})
	}
}

// canonical renders a table in nft syntax with its chains and sets in name
// order: the kernel keeps them in the order they were created.
func canonical(t *nft.Table) string {
	if t == nil {
		return "<no table>"
	}
	c := *t
	c.Chains = slices.Clone(t.Chains)
	c.Sets = slices.Clone(t.Sets)
	slices.SortFunc(c.Chains, func(a, b *nft.Chain) int { return strings.Compare(a.Name, b.Name) })
	slices.SortFunc(c.Sets, func(a, b *nft.Set) int { return strings.Compare(a.Name, b.Name) })
	return c.Body()
}

// holds fails the test unless the kernel's table is exactly the one the
// sync r built.
func holds(t *testing.T, k *fake.Kernel, r Result) {
	t.Helper()
	if r.Table == nil {
		t.Fatalf("sync %+v built no table", r)
	}
	if got, want := canonical(k.Table(r.Table.Name)), canonical(r.Table.Table); got != want {
		t.Fatalf("the kernel holds:\n%s\nwant the table of sync %q:\n%s", got, r.Reason, want)
	}
}

// rules returns the rules of a chain of the kernel's table as nft text.
func rules(k *fake.Kernel, chain string) []string {
	var out []string
	if t := k.Table("dockerfence"); t != nil && t.Chain(chain) != nil {
		for _, r := range t.Chain(chain).Rules {
			out = append(out, r.Text())
		}
	}
	return out
}

func containsText(texts []string, sub string) bool {
	return slices.ContainsFunc(texts, func(s string) bool { return strings.Contains(s, sub) })
}

// The daemon fences the networks Docker reports, and follows Docker as
// networks come and go.
func TestFakeKernelFollowsDocker(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h, k := startFake(t, true, "")
		holds(t, k, h.first)
		if got := rules(k, "fwd_br-1"); !containsText(got, "ip daddr 192.168.0.0/16 counter goto") {
			t.Fatalf("fwd_br-1 = %q, want the deny of 192.168.0.0/16", got)
		}
		h.docker.mu.Lock()
		h.docker.nets = append(h.docker.nets, docker.Network{ID: "2", Name: "app", Bridge: "br-2", Subnets: []netip.Prefix{netip.MustParsePrefix("172.21.0.0/16")}})
		h.docker.mu.Unlock()
		h.docker.updates <- docker.Update{Signal: docker.Changed, Event: "network create"}
		r := h.next()
		if !r.Changed || r.Err != nil {
			t.Fatalf("sync after a network was created = %+v", r)
		}
		holds(t, k, r)
		if vm := k.Table("dockerfence").Set("fwd_if").VMap; !slices.ContainsFunc(vm, func(e nft.VMapElem) bool { return e.Key == "br-2" && e.Chain == "fwd_br-2" }) {
			t.Errorf("fwd_if = %v, want br-2 dispatched to fwd_br-2", vm)
		}
		h.docker.mu.Lock()
		h.docker.nets = h.docker.nets[1:]
		h.docker.mu.Unlock()
		h.docker.updates <- docker.Update{Signal: docker.Changed, Event: "network destroy"}
		r = h.next()
		holds(t, k, r)
		if k.Table("dockerfence").Chain("fwd_br-1") != nil {
			t.Error("the removed network's chain is still there")
		}
	})
}

const listPolicy = `version: 1
lists:
  office: [10.1.0.0/16, 10.3.0.0/16]
networks:
  - match: {name: app}
    egress:
      - deny: "@office"
      - deny: 192.168.0.0/16
`

// Whatever another process does to the table, the daemon hears of it from
// the monitor and puts the table back.
func TestFakeKernelHealsTampering(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h, k := startFake(t, true, listPolicy)
		holds(t, k, h.first)
		tamper := []struct {
			name string
			do   func() error
		}{
			{"flush a network's chain", func() error { return k.FlushChain("dockerfence", "fwd_br-1") }},
			// The rules still record the set's digest: only the set named
			// by the monitor's change is read and repaired.
			{"delete an element of a list", func() error { return k.DeleteElements("dockerfence", "l_office_4", "10.3.0.0/16") }},
			{"add an accept to the base chain", func() error {
				return k.AddRule("dockerfence", "forward", &nft.Rule{Verdict: nft.Verdict{Kind: nft.Accept}, Comment: "let it all through"})
			}},
			{"point a bridge elsewhere", func() error { return k.SetMapElement("dockerfence", "fwd_if", "br-1", "fwd_br-1.e1") }},
			{"delete the table", func() error { return k.DeleteTable("dockerfence") }},
		}
		for _, tt := range tamper {
			if err := tt.do(); err != nil {
				t.Fatalf("%s: %v", tt.name, err)
			}
			// Changed says the sync found the table other than it should
			// be: the tampering took.
			r := h.next()
			if r.Trigger != TriggerKernel || !r.Changed || r.Err != nil {
				t.Fatalf("%s: sync = %+v, want a repair after the monitor's report", tt.name, r)
			}
			holds(t, k, r)
		}
		if got := k.Table("dockerfence").Set("l_office_4").Ranges; len(got) != 2 {
			t.Errorf("l_office_4 = %v, want both prefixes back", got)
		}
		h.none(100 * time.Millisecond)
	})
}

// A reload with a tighter policy changes the network's chain in place: the
// chain holds the new rule, and nothing else is re-created.
func TestFakeKernelReloadTightens(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h, k := startFake(t, true, "")
		before := len(k.Transactions())
		h.pmu.Lock()
		h.policy = namedPolicy + "      - deny: 10.0.0.0/8\n        comment: office\n"
		h.pmu.Unlock()
		h.reload <- os.Interrupt
		r := h.next()
		if r.Reason != "policy reload" || !r.Changed || r.Err != nil {
			t.Fatalf("sync after the reload = %+v", r)
		}
		holds(t, k, r)
		if got := rules(k, "fwd_br-1"); !containsText(got, `ip daddr 10.0.0.0/8 counter goto fwd_br-1.e2 comment "egress 2 deny: office"`) {
			t.Errorf("fwd_br-1 = %q, want the new deny", got)
		}
		txs := k.Transactions()[before:]
		if len(txs) != 1 {
			t.Fatalf("%d transactions for the reload, want 1:\n%v", len(txs), txs)
		}
		text := txs[0].String()
		for _, want := range []string{"flush chain inet dockerfence fwd_br-1\n", "add chain inet dockerfence fwd_br-1.e2\n"} {
			if !strings.Contains(text, want) {
				t.Errorf("the reload's transaction lacks %q:\n%s", want, text)
			}
		}
		if strings.Contains(text, "delete table") || strings.Contains(text, "flush chain inet dockerfence forward\n") {
			t.Errorf("the reload re-created what it should have kept:\n%s", text)
		}
		// The same policy again: nothing to send.
		h.reload <- os.Interrupt
		if r := h.next(); r.Changed || r.Err != nil || len(k.Transactions()) != before+1 {
			t.Errorf("sync after reloading the same policy = %+v, %d transactions", r, len(k.Transactions())-before-1)
		}
	})
}

// A kernel that refuses the transaction leaves the table as it was, and
// the daemon retries until it takes it.
func TestFakeKernelRefusalKeepsTable(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h, k := startFake(t, true, "")
		k.Refuse(func(*nft.Transaction) error { return unix.ENOBUFS })
		h.pmu.Lock()
		h.policy = strings.Replace(namedPolicy, "192.168.0.0/16", "10.0.0.0/8", 1)
		h.pmu.Unlock()
		h.reload <- os.Interrupt
		r := h.next()
		if !errors.Is(r.Err, unix.ENOBUFS) || r.Changed {
			t.Fatalf("sync while the kernel refuses = %+v", r)
		}
		holds(t, k, h.first)
		if r := h.next(); r.Reason != "retry" || r.Err == nil {
			t.Fatalf("retry = %+v, want it refused too", r)
		}
		holds(t, k, h.first)
		k.Refuse(nil)
		r = h.next()
		if r.Reason != "retry" || r.Err != nil || !r.Changed {
			t.Fatalf("retry once the kernel takes it = %+v", r)
		}
		holds(t, k, r)
		if got := rules(k, "fwd_br-1"); containsText(got, "192.168.0.0/16") || !containsText(got, "10.0.0.0/8") {
			t.Errorf("fwd_br-1 = %q, want the new policy's rule only", got)
		}
	})
}

// ask sends a request to the loop of Run and returns its reply.
func ask(t *testing.T, reqs chan<- Request, kind, file string) Reply {
	t.Helper()
	reply := make(chan Reply, 1)
	reqs <- Request{Kind: kind, PolicyFile: file, Caller: "pid 1, uid 0", Reply: reply}
	return <-reply
}

// A delete through the socket removes the table, and the daemon does not
// recreate it until apply; apply and plan of another policy file are
// refused.
func TestFakeKernelRequests(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		reqs := make(chan Request)
		k := fake.New()
		k.Own()
		h := start(t, true, func(c *Config) {
			c.Kernel = k
			c.Requests = reqs
			c.PolicyFile = "/etc/dockerfence/policy.yaml"
		})
		holds(t, k, h.first)
		if r := ask(t, reqs, RequestApply, "/tmp/other.yaml"); r.Err == nil || !strings.Contains(r.Err.Error(), "enforces the policy file /etc/dockerfence/policy.yaml, not /tmp/other.yaml") {
			t.Errorf("apply of another file = %+v", r)
		}
		if r := ask(t, reqs, RequestPlan, "/etc/dockerfence/policy.yaml"); r.Err != nil || !strings.Contains(r.Output, "is up to date") || r.Pending {
			t.Errorf("plan = %+v", r)
		}
		if r := ask(t, reqs, RequestDelete, ""); r.Err != nil || !strings.Contains(r.Output, "deleted table inet dockerfence") {
			t.Fatalf("delete = %+v", r)
		}
		if k.Table("dockerfence") != nil {
			t.Fatal("the table is still there after delete")
		}
		h.docker.updates <- docker.Update{Signal: docker.Changed, Event: "network create"}
		h.none(200 * time.Millisecond)
		if k.Table("dockerfence") != nil {
			t.Fatal("the daemon recreated the table after delete")
		}
		if r := ask(t, reqs, RequestPlan, "/etc/dockerfence/policy.yaml"); r.Err != nil || !strings.Contains(r.Output, "apply would change") || !r.Pending {
			t.Errorf("plan after delete = %+v, want changes pending", r)
		}
		r := ask(t, reqs, RequestApply, "/etc/dockerfence/policy.yaml")
		if r.Err != nil || !strings.Contains(r.Output, "dockerfence run applied table inet dockerfence") {
			t.Fatalf("apply after delete = %+v", r)
		}
		holds(t, k, h.next())
	})
}
