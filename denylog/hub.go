package denylog

import "sync"

// Hub keeps the latest events and hands new ones to subscribers. A
// subscriber that does not keep up loses events rather than slowing the
// reader; Lost counts them.
type Hub struct {
	// Keep is how many recent events are kept (default 1000).
	Keep int

	mu     sync.Mutex
	recent []Event
	next   int
	full   bool
	subs   map[*sub]struct{}
	total  uint64
}

type sub struct {
	ch   chan Event
	lost uint64
}

// Publish records e and sends it to every subscriber that has room.
func (h *Hub) Publish(e Event) {
	h.mu.Lock()
	defer h.mu.Unlock()
	keep := h.Keep
	if keep <= 0 {
		keep = 1000
	}
	if h.recent == nil {
		h.recent = make([]Event, keep)
	}
	h.recent[h.next] = e
	h.next = (h.next + 1) % len(h.recent)
	h.full = h.full || h.next == 0
	h.total++
	for s := range h.subs {
		select {
		case s.ch <- e:
		default:
			s.lost++
		}
	}
}

// Recent returns the kept events, oldest first.
func (h *Hub) Recent() []Event {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.snapshot()
}

// snapshot returns the kept events, oldest first; h.mu is held.
func (h *Hub) snapshot() []Event {
	if !h.full {
		return append([]Event(nil), h.recent[:h.next]...)
	}
	return append(append([]Event(nil), h.recent[h.next:]...), h.recent[:h.next]...)
}

// Total returns how many events were published.
func (h *Hub) Total() uint64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.total
}

// Subscribe returns the recent events and a channel of the events
// published from now on, atomically, so that none is missed or seen twice.
// The caller must call cancel when done; it returns how many events the
// subscription lost because its reader was too slow.
func (h *Hub) Subscribe(buffer int) (recent []Event, events <-chan Event, cancel func() uint64) {
	s := &sub{ch: make(chan Event, buffer)}
	h.mu.Lock()
	if h.subs == nil {
		h.subs = map[*sub]struct{}{}
	}
	h.subs[s] = struct{}{}
	recent = h.snapshot()
	h.mu.Unlock()
	return recent, s.ch, func() uint64 {
		h.mu.Lock()
		defer h.mu.Unlock()
		delete(h.subs, s)
		return s.lost
	}
}
