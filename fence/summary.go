package fence

import (
	"fmt"
	"strings"

	"github.com/dockerfence/dockerfence/policy"
)

// Summary says in one line what the table fences, as apply and plan print
// it; fromDocker is false when the networks are bridges found over netlink.
func (r *Result) Summary(fromDocker bool) string {
	var fenced []string
	for _, f := range r.Fenced {
		fenced = append(fenced, networkLabel(f.Network)+" on "+f.Network.Bridge)
	}
	s := fmt.Sprintf("%d networks fenced", len(r.Fenced))
	if len(fenced) > 0 {
		s += " (" + strings.Join(fenced, ", ") + ")"
	}
	if len(r.Unfenced) > 0 {
		var names []string
		for _, n := range r.Unfenced {
			names = append(names, networkLabel(n))
		}
		s += fmt.Sprintf(", %d matched by no section (%s)", len(r.Unfenced), strings.Join(names, ", "))
	}
	if r.CatchAll != nil {
		s += fmt.Sprintf(", new docker0/br-* bridges fenced by section %d", r.CatchAll.Index)
	}
	if len(r.ContainerChains) > 0 {
		judged := 0
		for _, fc := range r.Containers {
			if fc.Judged() {
				judged++
			}
		}
		s += fmt.Sprintf("; %d containers judged by rules of their own, on %d networks whose containers that start later are held until dockerfence run (which follows Docker) or the next apply knows them", judged, len(r.ContainerChains))
	}
	if !fromDocker {
		s += "; Docker not reachable, bridges found over netlink"
	}
	return s
}

// networkLabel names a network by its name, or its bridge if it has none.
func networkLabel(n policy.Network) string {
	if n.Name == "" {
		return n.Bridge
	}
	return n.Name
}
