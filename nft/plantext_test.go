package nft_test

import (
	"path/filepath"
	"testing"

	. "github.com/dockerfence/dockerfence/nft"
	"github.com/dockerfence/dockerfence/nft/internal/nfttest"
)

// TestPlanText renders the plans of the sample table as nft commands and
// compares them with golden files (-update rewrites them).
func TestPlanText(t *testing.T) {
	from, to := nfttest.Sample(), nfttest.Changed()
	have := stateOf(from)
	dump(have, from, NeedDump(to, have, SetDigests(to)))
	for _, tt := range []struct {
		name string
		t    *Table
		have *State
	}{
		{"fresh", from, nil},
		{"incremental", to, have},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p, err := PlanFrom(tt.t, tt.have)
			if err != nil {
				t.Fatal(err)
			}
			golden(t, filepath.Join("testdata", "plan-"+tt.name+".nft"), p.String())
		})
	}
}
