package node

import (
	"sync"
	"time"
)

// Event tells the UI that something changed, for live updates.
type Event struct {
	Type string    `json:"type"` // share, request, answer, friend, withdrawal, relay, refused, duplicate
	ID   string    `json:"id,omitempty"`
	Peer string    `json:"peer,omitempty"`
	Text string    `json:"text,omitempty"`
	At   time.Time `json:"at"`
}

// hub fans events out to subscribers; a slow subscriber misses events
// rather than blocking the node (the UI reloads its lists on any event).
type hub struct {
	mu   sync.Mutex
	subs map[chan Event]struct{}
}

func newHub() *hub { return &hub{subs: map[chan Event]struct{}{}} }

func (h *hub) subscribe() (<-chan Event, func()) {
	ch := make(chan Event, 64)
	h.mu.Lock()
	h.subs[ch] = struct{}{}
	h.mu.Unlock()
	return ch, func() {
		h.mu.Lock()
		if _, ok := h.subs[ch]; ok {
			delete(h.subs, ch)
			close(ch)
		}
		h.mu.Unlock()
	}
}

func (h *hub) publish(e Event) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for ch := range h.subs {
		select {
		case ch <- e:
		default:
		}
	}
}
