package fence

import (
	"testing"

	"github.com/dockerfence/dockerfence/policy"
)

func TestSummary(t *testing.T) {
	def := loadPolicy(t, "")
	nets := []policy.Network{{Name: "app_default", Bridge: "br-0123456789ab", Subnets: prefixes("172.20.0.0/16")}}
	got := Compile(def, nets).Summary(false)
	want := "1 networks fenced (app_default on br-0123456789ab), new docker0/br-* bridges fenced by section 1; Docker not reachable, bridges found over netlink"
	if got != want {
		t.Errorf("Summary = %q, want %q", got, want)
	}
	seed := loadPolicy(t, "testdata/seed.yaml")
	got = Compile(seed, append(nets, policy.Network{Bridge: "br-other", Subnets: prefixes("10.9.0.0/16")})).Summary(true)
	want = "1 networks fenced (app_default on br-0123456789ab), 1 matched by no section (br-other)"
	if got != want {
		t.Errorf("Summary = %q, want %q", got, want)
	}
}
