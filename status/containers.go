package status

import (
	"github.com/dockerfence/dockerfence/fence"
	"github.com/dockerfence/dockerfence/nft"
)

// ContainerStatus is a container that the container layer judges by rules
// of its own: its section, its label, and the packets they denied.
type ContainerStatus struct {
	Name string `json:"name"`
	ID   string `json:"id"`
	// Section is the 1-based index of the container section that matches
	// it (0 for none), and Match that section's match.
	Section int    `json:"section,omitempty"`
	Match   string `json:"match,omitempty"`
	// LabelRules counts the rules of its label dockerfence.egress;
	// LabelError, when set, says why the label does not parse: the
	// container is cut off.
	LabelRules int    `json:"label_rules,omitempty"`
	LabelError string `json:"label_error,omitempty"`
	// Rules are its rules, layer by layer ("container section egress 1",
	// "label egress 2", ...), with the kernel's counters.
	Rules []RuleStatus `json:"rules"`
	// Denied sums the packets its deny rules counted.
	Denied uint64 `json:"denied"`
}

// containers lists the containers with rules of their own, and counts,
// per network, the packets held because no container held their source.
func containers(r *fence.Result, chains map[string]*nft.ChainState, deny string) (out []ContainerStatus, held map[string]uint64) {
	out = []ContainerStatus{}
	held = map[string]uint64{}
	count := func(chain, id string) (p, b uint64) {
		if c := chains[chain]; c != nil {
			for _, kr := range c.Rules {
				if kr.ID == id {
					p, b = p+kr.Packets, b+kr.Bytes
				}
			}
		}
		return p, b
	}
	for _, cc := range r.ContainerChains {
		p, _ := count(cc.Chain, "held")
		u, _ := count(cc.Chain, fence.UncheckedRuleID)
		held[cc.Network.Bridge] = p + u
	}
	for _, fc := range r.Containers {
		if !fc.Judged() {
			continue
		}
		cs := ContainerStatus{Name: fc.Container.Name, ID: fc.Container.ID, LabelRules: len(fc.Label), Rules: []RuleStatus{}}
		if fc.Section != nil {
			cs.Section, cs.Match = fc.Section.Index, fc.Section.Match.String()
		}
		if fc.LabelErr != nil {
			cs.LabelError = fc.LabelErr.Error()
			p, b := count(fc.Chain, "cut off")
			cs.Rules = append(cs.Rules, RuleStatus{ID: "cut off", Hook: "egress", Verdict: deny, Match: "everything: the label does not parse", Packets: p, Bytes: b})
			cs.Denied += p
		}
		// The identity check at each of its bridge ports.
		for _, e := range fc.Container.Endpoints {
			if e.Port == "" || chains["id_"+e.Port] == nil {
				continue
			}
			p, b := count("id_"+e.Port, "identity")
			cs.Rules = append(cs.Rules, RuleStatus{ID: "identity", Hook: "ingress", Verdict: deny, Match: "source not its own address (port " + e.Port + ")", Packets: p, Bytes: b})
			cs.Denied += p
			p, b = count("id_"+e.Port, "identity nd")
			cs.Rules = append(cs.Rules, RuleStatus{ID: "identity nd", Hook: "ingress", Verdict: deny, Match: "neighbour advertisement for an address not its own (port " + e.Port + ")", Packets: p, Bytes: b})
			cs.Denied += p
			if chains["l2_"+e.Port] == nil {
				continue
			}
			p, b = 0, 0
			for _, id := range []string{"identity ether", "identity arp mac", "identity arp ip"} {
				pp, bb := count("l2_"+e.Port, id)
				p, b = p+pp, b+bb
			}
			cs.Rules = append(cs.Rules, RuleStatus{ID: "identity l2", Hook: "ingress", Verdict: deny, Match: "Ethernet source, or ARP sender MAC or IPv4, not its own (port " + e.Port + ", table netdev)", Packets: p, Bytes: b})
			cs.Denied += p
		}
		// The rules of each of its layers, from the model, with the
		// kernel's counters of the rules of the same ID.
		for _, suffix := range []string{".s", ".l"} {
			name := fc.Chain + suffix
			layer := map[string]string{".s": "container section ", ".l": "label "}[suffix]
			var mc *nft.Chain
			for _, c := range r.Table.Chains {
				if c.Name == name {
					mc = c
				}
			}
			if mc == nil {
				continue
			}
			seen := map[string]bool{}
			for _, mr := range mc.Rules {
				if seen[mr.ID] {
					continue
				}
				seen[mr.ID] = true
				p, b := count(name, mr.ID)
				rs := RuleStatus{ID: layer + mr.ID, Hook: "egress", Verdict: "allow", Comment: mr.Comment, Packets: p, Bytes: b}
				if mr.ID == "default" {
					rs.ID = layer + "egress_default"
				}
				if mr.Verdict.Kind == nft.Goto && r.Denials[mr.Verdict.Target] != nil {
					rs.Verdict = deny
					cs.Denied += p
				}
				cs.Rules = append(cs.Rules, rs)
			}
		}
		out = append(out, cs)
	}
	return out, held
}
