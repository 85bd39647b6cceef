package nft_test

import (
	"testing"

	. "github.com/dockerfence/dockerfence/nft"
	"github.com/dockerfence/dockerfence/nft/internal/nfttest"
)

// TestDigestCoversEncoding checks that a rule's digest follows its
// encoding, not only its text, and nothing that changes between batches.
func TestDigestCoversEncoding(t *testing.T) {
	// The same text, "iifname "br-*"", for a prefix match of three bytes
	// and for an exact match of the name "br-*": only the encoding tells
	// them apart.
	prefix := &Rule{Matches: []Match{IfName{Name: "br-", Prefix: true}}, Verdict: Verdict{Kind: Drop}}
	exact := &Rule{Matches: []Match{IfName{Name: "br-*"}}, Verdict: Verdict{Kind: Drop}}
	if prefix.Text() != exact.Text() {
		t.Fatalf("texts %q and %q differ; the test needs two rules with one text", prefix.Text(), exact.Text())
	}
	if prefix.Digest() == exact.Digest() {
		t.Error("two encodings of one text have one digest")
	}
	// Set IDs come from a counter that every batch advances; a rule with
	// an anonymous set (two protocols) and named lookups keeps its digest.
	tbl := nfttest.Sample()
	var before []string
	for _, c := range tbl.Chains {
		for _, r := range c.Rules {
			before = append(before, r.Digest())
		}
	}
	if err := SendPlan(tbl, nil, (&recorder{}).dial); err != nil {
		t.Fatal(err)
	}
	i := 0
	for _, c := range tbl.Chains {
		for _, r := range c.Rules {
			if d := r.Digest(); d != before[i] {
				t.Errorf("%s %q: digest %s became %s after a batch", c.Name, r.ID, before[i], d)
			}
			i++
		}
	}
	// A named set counts by name: other elements do not change the digest.
	a := &Rule{Matches: []Match{Addr{Set: "s"}}, Verdict: Verdict{Kind: Drop}}
	b := &Rule{Matches: []Match{Addr{Set: "t"}}, Verdict: Verdict{Kind: Drop}}
	if a.Digest() == b.Digest() {
		t.Error("lookups of two sets have one digest")
	}
}
