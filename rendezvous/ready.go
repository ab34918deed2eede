package rendezvous

import (
	"context"
	"errors"
	"fmt"
	"time"

	ds "github.com/ipfs/go-datastore"
)

// Readiness is what /readyz reports: whether the relay can serve, and
// each check's finding in words.
type Readiness struct {
	Ready   bool   `json:"ready"`
	Storage string `json:"storage"`
	DHT     string `json:"dht"`
}

// readyProbe is a key no record uses: reading it proves the datastore
// answers.
var readyProbe = ds.NewKey("/kith/relay/ready-probe")

// Ready checks what the relay needs to serve: a datastore that answers
// reads within a second and whose last write succeeded, and, when the
// relay federates (peers or admit configured), a DHT with at least one
// relay in its routing table.
func (r *Relay) Ready(ctx context.Context) Readiness {
	out := Readiness{Ready: true, Storage: "ok", DHT: "ok"}
	if r.ctx.Err() != nil {
		return Readiness{Storage: "the relay is shutting down", DHT: "the relay is shutting down"}
	}
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	if _, err := r.store.ds.Get(ctx, readyProbe); err != nil && !errors.Is(err, ds.ErrNotFound) {
		out.Ready, out.Storage = false, fmt.Sprintf("the datastore does not answer: %v", err)
	} else if p := r.store.writeErr.Load(); p != nil {
		out.Ready, out.Storage = false, fmt.Sprintf("the last write failed: %v", *p)
	}
	switch {
	case r.routing == nil:
		out.DHT = "off"
	case len(r.cfg.Peers)+len(r.cfg.Admit) == 0:
		out.DHT = "ok: no other relay is configured"
	default:
		if n := r.routing.dht.RoutingTable().Size(); n == 0 {
			out.Ready, out.DHT = false, "no other relay in the routing table: the federation is out of reach"
		} else {
			out.DHT = fmt.Sprintf("ok: %d relays in the routing table", n)
		}
	}
	return out
}
