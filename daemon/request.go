package daemon

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/dockerfence/dockerfence/fence"
	"github.com/dockerfence/dockerfence/nft"
	"github.com/dockerfence/dockerfence/policy"
)

// Requests that the daemon's socket takes on behalf of the commands apply,
// plan and delete, while the daemon owns the table and no other process
// can change it.
const (
	// RequestApply reloads the daemon's policy file and syncs at once,
	// verifying the whole table.
	RequestApply = "apply"
	// RequestPlan says what a sync with the policy file as it is now would
	// change in the kernel's table, changing nothing.
	RequestPlan = "plan"
	// RequestDelete deletes the table: the fence is open until the next
	// reload (SIGHUP, a change of the policy file, or apply).
	RequestDelete = "delete"
)

// Request is one command from the socket, served by the loop of Run.
type Request struct {
	// Kind is one of the Request constants.
	Kind string
	// PolicyFile is the caller's policy file (its -c, or the default),
	// absolute: apply and plan are refused unless it is the daemon's.
	PolicyFile string
	// Caller names the caller for the log ("pid 12, uid 0").
	Caller string
	// Reply receives the answer, once.
	Reply chan<- Reply
}

// Reply is the daemon's answer to a Request: the command's output, or why
// it failed, and the warnings of the policy and of the table built, which
// the command logs as it does when it works by itself.
type Reply struct {
	Output   string
	Warnings []string
	Err      error
	// Pending says, for a plan, whether apply would change the table.
	Pending bool
}

// warnings returns the policy's warnings, then the table's (t may be nil).
func warnings(pol *policy.Policy, t *fence.Result) []string {
	w := slices.Clone(pol.Warnings)
	if t != nil {
		w = append(w, t.Warnings...)
	}
	return w
}

// samePolicy checks that the caller's policy file is the daemon's.
func (d *daemon) samePolicy(file string) error {
	mine := d.cfg.PolicyFile
	if mine == "" || file == "" {
		return nil
	}
	if a, err := filepath.Abs(mine); err == nil {
		mine = a
	}
	if filepath.Clean(file) == filepath.Clean(mine) {
		return nil
	}
	a, aerr := os.Stat(file)
	b, berr := os.Stat(mine)
	if aerr == nil && berr == nil && os.SameFile(a, b) {
		return nil
	}
	return fmt.Errorf("dockerfence run enforces the policy file %s, not %s: edit that file and run apply without -c (or with -c %s), or stop the daemon to apply another policy by hand", mine, file, mine)
}

// request serves one Request in the loop of Run.
func (d *daemon) request(ctx context.Context, r Request) {
	d.cfg.Log.Info("request on the socket", "request", r.Kind, "caller", r.Caller, "policy", r.PolicyFile)
	var rep Reply
	switch r.Kind {
	case RequestApply:
		rep = d.applyRequest(ctx, r)
	case RequestPlan:
		rep = d.planRequest(ctx, r)
	case RequestDelete:
		rep = d.deleteRequest()
	default:
		rep.Err = fmt.Errorf("unknown request %q", r.Kind)
	}
	if rep.Err != nil {
		d.cfg.Log.Warn("request failed", "request", r.Kind, "caller", r.Caller, "err", rep.Err)
	}
	r.Reply <- rep
}

func (d *daemon) applyRequest(ctx context.Context, r Request) Reply {
	if err := d.samePolicy(r.PolicyFile); err != nil {
		return Reply{Err: err}
	}
	pol, err := d.cfg.LoadPolicy()
	if err != nil {
		return Reply{Err: fmt.Errorf("the policy is invalid; the daemon keeps the previous one in force: %w", err)}
	}
	if pol.Settings.Table != d.pol.Settings.Table {
		return Reply{Err: fmt.Errorf("settings.table changed from %s to %s: restart dockerfence run to move the fence to another table (and delete the old one)", d.pol.Settings.Table, pol.Settings.Table)}
	}
	d.pol = pol
	d.deleted = false
	res := d.sync(ctx, TriggerApply, "apply by "+r.Caller)
	rep := Reply{Warnings: warnings(pol, res.Table)}
	switch {
	case res.Err != nil:
		return Reply{Err: fmt.Errorf("dockerfence run could not apply the policy; it retries with backoff: %w", res.Err)}
	case res.Kept:
		rep.Output = fmt.Sprintf("dockerfence run reloaded %s and keeps table inet %s as it is until Docker answers\n", pol.Source, pol.Settings.Table)
	case res.Table == nil:
		rep.Output = fmt.Sprintf("dockerfence run reloaded %s\n", pol.Source)
	case res.Changed:
		rep.Output = fmt.Sprintf("dockerfence run applied table inet %s in %s: %s\n", res.Table.Name, res.Took.Round(10e3), res.Table.Summary(res.Source == "docker"))
	default:
		rep.Output = fmt.Sprintf("table inet %s is already up to date, verified in full by dockerfence run (%s): %s\n", res.Table.Name, res.Took.Round(10e3), res.Table.Summary(res.Source == "docker"))
	}
	return rep
}

func (d *daemon) planRequest(ctx context.Context, r Request) Reply {
	if err := d.samePolicy(r.PolicyFile); err != nil {
		return Reply{Err: err}
	}
	pl, ok := d.cfg.Kernel.(Planner)
	if !ok {
		return Reply{Err: fmt.Errorf("this daemon's kernel cannot plan")}
	}
	pol, err := d.cfg.LoadPolicy()
	if err != nil {
		return Reply{Err: err}
	}
	inv, err := d.inventory(ctx)
	if err != nil {
		return Reply{Err: err}
	}
	t := compile(pol, inv)
	p, err := pl.Plan(t.Table, t.OwnedSets()...)
	if err != nil {
		return Reply{Err: err}
	}
	return Reply{Output: PlanText(t.Name, t.Table, p, t.Summary(inv.FromDocker())), Warnings: warnings(pol, t), Pending: !p.Empty()}
}

// PlanText renders a plan as the command plan prints it: one line a
// difference, then the transactions in nft syntax.
func PlanText(name string, t *nft.Table, p *nft.Plan, summary string) string {
	if p.Empty() {
		return fmt.Sprintf("table inet %s is up to date: %s\n", name, summary)
	}
	var b strings.Builder
	changes := nft.Diff(t, p.Have)
	fmt.Fprintf(&b, "apply would change table inet %s (%d changes):\n", name, len(changes))
	for _, c := range changes {
		fmt.Fprintln(&b, "  "+c)
	}
	fmt.Fprintf(&b, "\n%s", p)
	return b.String()
}

func (d *daemon) deleteRequest() Reply {
	name := d.pol.Settings.Table
	del, ok := d.cfg.Kernel.(interface{ Delete(string) (bool, error) })
	if !ok {
		return Reply{Err: fmt.Errorf("this daemon's kernel cannot delete")}
	}
	existed, err := del.Delete(name)
	if err != nil {
		return Reply{Err: err}
	}
	d.deleted = true
	d.cfg.Log.Warn("table deleted on request: containers are no longer fenced; the daemon keeps running and fences again at the next reload (SIGHUP, a change of the policy file, or dockerfence apply)", "table", name)
	if !existed {
		return Reply{Output: fmt.Sprintf("table inet %s does not exist; nothing to delete. dockerfence run does not recreate it until SIGHUP, a change of the policy file, or dockerfence apply\n", name)}
	}
	return Reply{Output: fmt.Sprintf("deleted table inet %s: containers are no longer fenced. dockerfence run keeps running and does not recreate it until SIGHUP, a change of the policy file, or dockerfence apply\n", name)}
}
