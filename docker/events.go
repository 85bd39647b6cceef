package docker

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/docker/docker/api/types/events"
	"github.com/docker/docker/api/types/filters"
)

// Signal tells the reader of Follow's updates what happened.
type Signal int

const (
	// Connected means that the event stream is (re)established. The reader
	// must resync fully, because events may have been missed before it.
	Connected Signal = iota + 1
	// Changed means that an event that can change the fenced networks
	// arrived.
	Changed
	// Lost means that the stream broke (daemon gone, socket error); Follow
	// retries with backoff. The Update's Err says why.
	Lost
)

// String returns the signal's name in lower case, such as "connected".
func (s Signal) String() string {
	switch s {
	case Connected:
		return "connected"
	case Changed:
		return "changed"
	case Lost:
		return "lost"
	}
	return fmt.Sprintf("Signal(%d)", int(s))
}

// Update is one notification sent by Follow.
type Update struct {
	Signal Signal
	// Err says why the stream was lost. It is set only with Lost, and wraps
	// ErrUnreachable if the daemon could not be contacted.
	Err error
	// Event describes, for logs, the event of a Changed update, such as
	// "network create app_default" or "container start web-1". It is empty
	// with the other signals.
	Event string
	// Died is set for a container's death: the addresses it held are
	// free, and another container may take them at once.
	Died bool
}

// Backoff bounds the delay before Follow reconnects after a failure. The
// delay starts at Min, doubles after each consecutive failure up to Max, and
// goes back to Min once the stream is connected again.
type Backoff struct {
	// Min is the first delay; zero or less means 100ms.
	Min time.Duration
	// Max caps the delay; zero or less means 5s. A Max below Min is raised
	// to Min.
	Max time.Duration
}

// Default bounds of Backoff.
const (
	defaultBackoffMin = 100 * time.Millisecond
	defaultBackoffMax = 5 * time.Second
)

// withDefaults returns b with its zero fields set to the defaults and Max at
// least Min.
func (b Backoff) withDefaults() Backoff {
	if b.Min <= 0 {
		b.Min = defaultBackoffMin
	}
	if b.Max <= 0 {
		b.Max = defaultBackoffMax
	}
	b.Max = max(b.Max, b.Min)
	return b
}

// next returns the delay that follows d.
func (b Backoff) next(d time.Duration) time.Duration {
	if d > b.Max/2 {
		return b.Max
	}
	return 2 * d
}

// replayWindow is how far back in time Follow asks the daemon to replay
// events when it subscribes. The daemon answers the events request before
// it registers the subscription, so an event can slip between the two; the
// daemon replays events from its buffer atomically with subscribing, and
// this window covers that gap and some clock skew between Follow's host and
// the daemon's. Replayed events only cause redundant resyncs.
const replayWindow = time.Second

// connectTimeout bounds how long an attempt to connect may wait for the
// daemon to answer the events request and the ping that follows it, so that
// a daemon that accepts connections but hangs yields Lost rather than
// stalling Follow. It is a variable for tests.
var connectTimeout = 10 * time.Second

// relevantActions are the event actions, by event type, that can change the
// networks dockerfence fences.
var relevantActions = map[events.Type][]events.Action{
	events.NetworkEventType:   {events.ActionCreate, events.ActionDestroy, events.ActionConnect, events.ActionDisconnect},
	events.ContainerEventType: {events.ActionStart, events.ActionDie, events.ActionRename},
}

// Follow streams Docker events that can change the networks dockerfence
// fences until ctx ends, reconnecting with backoff. It sends Connected each
// time the stream is (re)established, including the first time, Changed for
// each relevant event (network create, destroy, connect and disconnect;
// container start and die), and Lost when the stream fails or cannot be
// established, after which it waits for the backoff delay and reconnects.
// It sends Connected only once the daemon has answered both the events
// request and a ping made after it, so no event that happens after a
// Connected is missed. (A daemon that answers the ping but refuses the
// events request with an error yields Lost; in rare timings a Connected
// comes right before that Lost.) Follow blocks until ctx is done, then
// closes out and returns; a send on out never outlasts ctx. The reader
// should drain out promptly: while a send blocks, Follow does not read the
// stream, and the daemon drops events for a subscriber that falls far
// behind.
func (c *Client) Follow(ctx context.Context, out chan<- Update, backoff Backoff) {
	defer close(out)
	backoff = backoff.withDefaults()
	delay := backoff.Min
	for {
		connected, err := c.stream(ctx, out)
		if ctx.Err() != nil {
			return
		}
		if connected {
			delay = backoff.Min
		}
		if !send(ctx, out, Update{Signal: Lost, Err: err}) || !sleep(ctx, delay) {
			return
		}
		delay = backoff.next(delay)
	}
}

// stream subscribes to the daemon's relevant events and forwards them to out
// until the stream fails or ctx ends. connected reports whether it sent
// Connected; err says why the stream ended.
func (c *Client) stream(ctx context.Context, out chan<- Update) (connected bool, err error) {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil) // Also ends the client's goroutine that reads the stream.

	timeout := connectTimeout
	timer := time.AfterFunc(timeout, func() {
		cancel(fmt.Errorf("no answer within %v: %w", timeout, context.DeadlineExceeded))
	})
	// Subscribe first, then ping: once the ping is answered, the events
	// request has been answered too, and every event from then on reaches
	// msgs, even those that arrive before Connected is sent.
	msgs, errs := c.api.Events(ctx, events.ListOptions{
		Since:   time.Now().Add(-replayWindow).UTC().Format(time.RFC3339Nano),
		Filters: eventFilters(),
	})
	_, pingErr := c.api.Ping(ctx)
	if !timer.Stop() {
		return false, fmt.Errorf("subscribe to docker events: %w", classify(context.Cause(ctx)))
	}
	// A failed events request shows on errs. The client puts the error
	// there just after Events returns, so the ping's round trip nearly
	// always leaves time for it; if not, the failure comes out of the loop
	// below as a Lost right after Connected.
	select {
	case err := <-errs:
		return false, fmt.Errorf("subscribe to docker events: %w", classify(err))
	default:
	}
	if pingErr != nil {
		return false, fmt.Errorf("ping docker daemon: %w", classify(pingErr))
	}
	if !send(ctx, out, Update{Signal: Connected}) {
		return false, ctx.Err()
	}

	for {
		select {
		case m := <-msgs:
			text, ok := describe(m)
			died := m.Type == events.ContainerEventType && m.Action == events.ActionDie
			if ok && !send(ctx, out, Update{Signal: Changed, Event: text, Died: died}) {
				return true, ctx.Err()
			}
		case err := <-errs:
			if err == nil {
				// The client sends an error before closing errs; this only
				// guards against a change of that behaviour.
				err = errors.New("stream ended")
			}
			return true, fmt.Errorf("docker event stream: %w", classify(err))
		case <-ctx.Done():
			return true, ctx.Err()
		}
	}
}

// eventFilters returns the filters that make the daemon send only the event
// types and actions of relevantActions. The daemon matches any listed type
// with any listed action, so describe still checks the pairs.
func eventFilters() filters.Args {
	f := filters.NewArgs()
	for typ, actions := range relevantActions {
		f.Add("type", string(typ))
		for _, a := range actions {
			f.Add("event", string(a))
		}
	}
	return f
}

// describe returns a description of m for logs, such as
// "network create app_default", and whether m can change the fenced
// networks.
func describe(m events.Message) (string, bool) {
	if !slices.Contains(relevantActions[m.Type], m.Action) {
		return "", false
	}
	parts := []string{string(m.Type), string(m.Action)}
	if name := m.Actor.Attributes["name"]; name != "" {
		parts = append(parts, name)
	} else if m.Actor.ID != "" {
		parts = append(parts, shortID(m.Actor.ID))
	}
	if ctr := m.Actor.Attributes["container"]; m.Type == events.NetworkEventType && ctr != "" {
		parts = append(parts, "container", shortID(ctr))
	}
	return strings.Join(parts, " "), true
}

// shortID returns the first 12 characters of a Docker ID, as the Docker CLI
// shows it.
func shortID(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

// send sends u on out unless ctx ends first, and reports whether it sent.
func send(ctx context.Context, out chan<- Update, u Update) bool {
	select {
	case out <- u:
		return true
	case <-ctx.Done():
		return false
	}
}

// sleep waits for d unless ctx ends first, and reports whether it waited.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
