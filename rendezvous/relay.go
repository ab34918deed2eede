package rendezvous

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	ds "github.com/ipfs/go-datastore"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	relayv2 "github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/relay"
	ma "github.com/multiformats/go-multiaddr"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/kithnet/kith/identity"
	"github.com/kithnet/kith/protocols"
)

// ServiceName is the libp2p resource manager service of the relay's streams.
const ServiceName = "kith.rendezvous"

type options struct {
	cfg        Config
	clock      func() time.Time
	log        *slog.Logger
	registerer prometheus.Registerer
	pubsub     *pubsub.PubSub
}

// Option configures a Relay.
type Option func(*options) error

// WithConfig sets the operator's configuration (default DefaultConfig()).
func WithConfig(c Config) Option {
	return func(o *options) error {
		if err := c.Validate(); err != nil {
			return err
		}
		o.cfg = c
		return nil
	}
}

// WithClock sets the clock (default time.Now). Tests and simnet pass their
// own; every decision reads time from it.
func WithClock(now func() time.Time) Option {
	return func(o *options) error { o.clock = now; return nil }
}

// WithLogger sets the logger (default slog.Default()).
func WithLogger(l *slog.Logger) Option {
	return func(o *options) error { o.log = l; return nil }
}

// WithRegisterer registers the relay's Prometheus metrics there (default:
// a private registry, see Relay.Registry).
func WithRegisterer(r prometheus.Registerer) Option {
	return func(o *options) error { o.registerer = r; return nil }
}

// WithPubSub makes the relay gossip revocations over ps instead of creating
// its own gossipsub router on the host.
func WithPubSub(ps *pubsub.PubSub) Option {
	return func(o *options) error { o.pubsub = ps; return nil }
}

// Relay is a Kith rendezvous node on a libp2p host: it verifies and relays
// shares, keeps mailboxes for offline users, fans out combined add
// requests, answers presence queries, gossips revocations, and serves
// circuit relay v2. It owns neither its host nor its datastore.
type Relay struct {
	h        host.Host
	cfg      Config
	clock    func() time.Time
	log      *slog.Logger
	store    *store
	verifier *identity.Verifier
	trace    tracer
	registry *prometheus.Registry
	sessions *sessions
	limits   *limiters
	gossip   *gossip
	circuit  *relayv2.Relay
	routing  *routing // nil when the DHT is off
	peers    relayPeers
	notifee  *network.NotifyBundle

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	once   sync.Once

	traffic traffic
}

// traffic counts the relay's protocol messages and their bytes.
type traffic struct {
	msgsIn, bytesIn, msgsOut, bytesOut atomic.Int64
	ackFrames, ackBytes, acked         atomic.Int64
}

// Traffic is what a relay received and sent in Kith protocol messages
// (frames; not counting libp2p's own overhead). Inbox acknowledgements
// are counted apart: a node acknowledges a burst of items in one frame,
// so their frames depend on how items happened to arrive together, and
// Acked (items acknowledged) is what they carried.
type Traffic struct {
	MessagesIn, BytesIn, MessagesOut, BytesOut int64
	AckFrames, AckBytes, Acked                 int64
}

// Traffic returns the relay's message and byte counts so far.
func (r *Relay) Traffic() Traffic {
	t := &r.traffic
	return Traffic{t.msgsIn.Load(), t.bytesIn.Load(), t.msgsOut.Load(), t.bytesOut.Load(),
		t.ackFrames.Load(), t.ackBytes.Load(), t.acked.Load()}
}

func (t *traffic) in(n int) {
	t.msgsIn.Add(1)
	t.bytesIn.Add(int64(n))
}

func (t *traffic) ack(n, items int) {
	t.ackFrames.Add(1)
	t.ackBytes.Add(int64(n))
	t.acked.Add(int64(items))
}

func (t *traffic) out(msgs, n int) {
	t.msgsOut.Add(int64(msgs))
	t.bytesOut.Add(int64(n))
}

// New starts a relay on h with its state in d. Close stops it; the caller
// closes h and d afterwards.
func New(ctx context.Context, h host.Host, d ds.Batching, opts ...Option) (*Relay, error) {
	o := options{cfg: DefaultConfig(), clock: time.Now, log: slog.Default()}
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			return nil, fmt.Errorf("rendezvous: %w", err)
		}
	}
	r := &Relay{h: h, cfg: o.cfg, clock: o.clock, log: o.log.With("relay", h.ID().String())}
	r.ctx, r.cancel = context.WithCancel(context.Background())
	r.sessions = newSessions(sessionDeps{
		clock:     r.clock,
		ttl:       r.cfg.RegistrationTTL.D(),
		protect:   func(p peer.ID) { h.ConnManager().Protect(p, "kith-inbox") },
		unprotect: func(p peer.ID) { h.ConnManager().Unprotect(p, "kith-inbox") },
		itemState: func(p peer.ID, id string) (idRecord, bool) { return r.store.itemState(p, id) },
	})
	r.limits = newLimiters(r.clock)
	reg := o.registerer
	if reg == nil {
		r.registry = prometheus.NewRegistry()
		reg = r.registry
	}
	sigs := identity.NewSigBatcher(0)
	var err error
	// The gauges read the store at each scrape, which comes after New.
	g := gauges{
		waiting:       func() int { _, total := r.store.depth(""); return total },
		waitingBytes:  func() int64 { return r.store.pendingBytes() },
		strangerItems: func() int { return r.store.strangerItems() },
		online:        r.sessions.count,
		users:         func() int { return r.store.users() },
		nonEmpty:      func() int { return r.store.nonEmptyBoxes() },
		ready:         func() bool { return r.Ready(context.Background()).Ready },
		storeItems:    r.cfg.StoreItems,
		storeBytes:    r.cfg.StoreBytes,
	}
	if r.trace, err = newMetrics(reg, g, sigs); err != nil {
		r.cancel()
		return nil, err
	}
	// The store's hooks are in place before it loads, so that what its
	// start commits (finishing a withdrawal) is counted and announced.
	st, err := openStore(ctx, d, &r.cfg, r.clock, r.log, storeHooks{
		notify: r.sessions.kick,
		online: r.sessions.window,
		onDrop: func(n int) { r.trace.expired(n) },
		onSync: func(d time.Duration, n int) { r.trace.committed(d, n) },
	})
	if err != nil {
		r.cancel()
		return nil, err
	}
	r.store = st
	r.verifier = identity.NewVerifier(identity.WithRevocations(st.revoked), identity.WithSigBatcher(sigs))
	// The federation: the relays the operator names.
	for _, ai := range r.peerInfos() {
		r.peers.add(ai.ID)
	}
	for _, a := range r.cfg.Admit {
		if p, err := peer.Decode(a); err == nil {
			r.peers.add(p)
		}
	}

	if r.cfg.Circuit.Enabled {
		res := relayv2.DefaultResources()
		res.MaxReservations = r.cfg.Circuit.MaxReservations
		res.MaxReservationsPerIP = r.cfg.Circuit.MaxReservationsPerIP
		res.MaxReservationsPerASN = r.cfg.Circuit.MaxReservationsPerIP * 4
		res.MaxCircuits = r.cfg.Circuit.MaxCircuits
		res.Limit = &relayv2.RelayLimit{Duration: r.cfg.Circuit.DurationLimit.D(), Data: r.cfg.Circuit.DataLimit}
		// libp2p's circuit metrics are package globals: relays sharing
		// a process (tests, simnet) share their counts.
		r.circuit, err = relayv2.New(h, relayv2.WithResources(res), relayv2.WithACL(circuitACL{r}),
			relayv2.WithMetricsTracer(relayv2.NewMetricsTracer(relayv2.WithRegisterer(reg))))
		if err != nil {
			r.Close()
			return nil, fmt.Errorf("rendezvous: circuit relay: %w", err)
		}
	}
	r.gossip, err = startGossip(r.ctx, h, o.pubsub, gossipDeps{
		self: h.ID(), verify: r.verifier.Revocation, apply: r.applyRevocation, log: r.log, trace: r.trace,
		admitted: r.peers.has,
	})
	if err != nil {
		r.Close()
		return nil, err
	}
	if r.cfg.DHT.Enabled {
		r.routing, err = startRouting(routingDeps{
			ctx: r.ctx, wg: &r.wg, h: h, cfg: r.cfg.DHT, clock: r.clock, log: r.log, trace: r.trace,
			verifier: r.verifier, profiles: r.store.allProfiles, bootstrap: r.peerInfos(), admitted: r.peers.has,
			allowPut: func(p peer.ID) bool { return r.limits.allow("dht-put", p, r.cfg.DHT.PutRate) },
		}, d)
		if err != nil {
			r.Close()
			return nil, err
		}
	}

	h.SetStreamHandler(protocols.ShareProtocol, r.handleShare)
	h.SetStreamHandler(protocols.InboxProtocol, r.handleInbox)
	h.SetStreamHandler(protocols.AddProtocol, r.handleAdd)
	h.SetStreamHandler(protocols.LegacyAddProtocol, r.handleAdd)
	h.SetStreamHandler(protocols.PresenceProtocol, r.handlePresence)
	h.SetStreamHandler(protocols.LegacyPresenceProtocol, r.handlePresence)
	h.SetStreamHandler(protocols.RevokeProtocol, r.handleRevoke)
	h.SetStreamHandler(protocols.RevSyncProtocol, r.handleRevSync)
	connected, nb := r.watchRelayPeers()
	r.notifee = nb
	r.wg.Add(1)
	go r.syncLoop(connected)

	r.wg.Add(2)
	go r.sweep()
	go r.keepPeers()
	_, waiting := st.depth("")
	r.log.Info("relay started", "mailbox_items", waiting)
	return r, nil
}

// ID returns the relay's peer id.
func (r *Relay) ID() peer.ID { return r.h.ID() }

// Host returns the relay's host.
func (r *Relay) Host() host.Host { return r.h }

// Registry returns the private metrics registry, or nil when the relay was
// given a Registerer.
func (r *Relay) Registry() *prometheus.Registry { return r.registry }

// Online reports whether p has an open inbox at this relay.
func (r *Relay) Online(p peer.ID) bool { return r.sessions.get(p) != nil }

// Waiting returns how many items wait in p's mailbox.
func (r *Relay) Waiting(p peer.ID) int {
	n, _ := r.store.depth(p)
	return n
}

// WaitingFromStrangers returns how many of p's waiting items are in its
// strangers' room: add requests from people not yet p's friends.
func (r *Relay) WaitingFromStrangers(p peer.ID) int { return r.store.strangersOf(p) }

// Close stops serving: it removes the stream handlers, ends the inbox
// sessions, finishes the datastore work already queued, and returns. It
// does not close the host or the datastore.
func (r *Relay) Close() error {
	r.once.Do(func() {
		for _, p := range []protocol.ID{protocols.ShareProtocol, protocols.InboxProtocol,
			protocols.AddProtocol, protocols.LegacyAddProtocol, protocols.PresenceProtocol,
			protocols.LegacyPresenceProtocol, protocols.RevokeProtocol, protocols.RevSyncProtocol} {
			r.h.RemoveStreamHandler(p)
		}
		if r.notifee != nil {
			r.h.Network().StopNotify(r.notifee)
		}
		r.cancel()
		if r.routing != nil {
			r.routing.close()
		}
		if r.gossip != nil {
			r.gossip.close()
		}
		if r.circuit != nil {
			r.circuit.Close()
		}
		if r.sessions != nil {
			r.sessions.closeAll()
		}
		r.wg.Wait()
		if r.store != nil {
			r.store.close()
		}
		r.log.Info("relay stopped")
	})
	return nil
}

// sweep drops expired items, share records, registrations and idle rate
// limiters.
func (r *Relay) sweep() {
	defer r.wg.Done()
	t := time.NewTicker(r.cfg.SweepInterval.D())
	defer t.Stop()
	lastShares := time.Time{}
	for {
		select {
		case <-r.ctx.Done():
			return
		case <-r.store.seen.grow:
			// The replay filter is full: rebuild it larger now rather
			// than at the hour (unless a rebuild since the signal did).
			if !r.store.seen.full() {
				continue
			}
			start := time.Now()
			if err := r.store.expireShares(r.ctx); err != nil && r.ctx.Err() == nil {
				r.log.Warn("rebuilding the replay filter", "err", err)
			} else {
				r.log.Info("rebuilt the replay filter", "ids", r.store.seen.count(), "took", time.Since(start))
			}
			continue
		case <-t.C:
		}
		if err := r.store.expire(r.ctx); err != nil && !errors.Is(err, ErrClosed) && r.ctx.Err() == nil {
			r.log.Warn("expiring mailboxes", "err", err)
		}
		now := r.clock()
		if now.Sub(lastShares) >= time.Hour {
			lastShares = now
			if err := r.store.expireShares(r.ctx); err != nil && r.ctx.Err() == nil {
				r.log.Warn("expiring share records", "err", err)
			}
			if _, err := r.store.expireSettled(r.ctx); err != nil && r.ctx.Err() == nil {
				r.log.Warn("expiring delivered items' records", "err", err)
			}
			if err := r.store.expireRevocations(r.ctx); err != nil && r.ctx.Err() == nil {
				r.log.Warn("expiring revocations", "err", err)
			}
		}
		r.sessions.expire(now)
		r.limits.sweep()
	}
}

// peerInfos parses the configured relay peers, skipping (with a warning)
// those that are not full addresses.
func (r *Relay) peerInfos() []peer.AddrInfo {
	var infos []peer.AddrInfo
	for _, s := range r.cfg.Peers {
		a, err := ma.NewMultiaddr(s)
		if err != nil {
			r.log.Warn("bad peer address in config", "addr", s, "err", err)
			continue
		}
		ai, err := peer.AddrInfoFromP2pAddr(a)
		if err != nil {
			r.log.Warn("peer address must end in /p2p/<id>", "addr", s, "err", err)
			continue
		}
		infos = append(infos, *ai)
	}
	return infos
}

// keepPeers stays connected to the configured relays, for gossip.
func (r *Relay) keepPeers() {
	defer r.wg.Done()
	infos := r.peerInfos()
	if len(infos) == 0 {
		return
	}
	backoff := time.Second
	for {
		all := true
		for _, ai := range infos {
			r.h.ConnManager().Protect(ai.ID, "kith-relay-peer")
			if r.h.Network().Connectedness(ai.ID) == network.Connected {
				continue
			}
			ctx, cancel := context.WithTimeout(r.ctx, 10*time.Second)
			if err := r.h.Connect(ctx, ai); err != nil {
				all = false
				r.log.Debug("cannot reach relay peer", "peer", ai.ID, "err", err)
			}
			cancel()
		}
		if all {
			backoff = 30 * time.Second
		} else if backoff < 30*time.Second {
			backoff *= 2
		}
		select {
		case <-r.ctx.Done():
			return
		case <-time.After(backoff):
		}
	}
}

// circuitACL lets only users registered here reserve a slot, and only
// registered users reach them through it.
type circuitACL struct{ r *Relay }

// reserveWait is how long a reservation waits for its user's login: a
// node asks for both at once when it connects, and the reservation often
// arrives first (refused, it would be asked again only after AutoRelay's
// backoff).
const reserveWait = 3 * time.Second

func (a circuitACL) AllowReserve(p peer.ID, _ ma.Multiaddr) bool {
	deadline := time.Now().Add(reserveWait)
	for !a.r.sessions.registered(p) {
		if time.Now().After(deadline) || a.r.ctx.Err() != nil {
			return false
		}
		time.Sleep(50 * time.Millisecond)
	}
	return true
}

func (a circuitACL) AllowConnect(src peer.ID, _ ma.Multiaddr, dest peer.ID) bool {
	return a.r.sessions.registered(src) && a.r.sessions.get(dest) != nil
}

// MailboxItems returns how many items wait in all mailboxes.
// KnowsRevocation reports whether the relay holds the revocation of the
// friendship attestation id (received from its user or from the other
// relays).
func (r *Relay) KnowsRevocation(id identity.AttestationID) bool { return r.store.revoked.Revoked(id) }

// RelayPeers returns how many other relays of the federation this one
// is connected to now.
func (r *Relay) RelayPeers() int {
	n := 0
	for _, p := range r.h.Network().Peers() {
		if r.peers.has(p) {
			n++
		}
	}
	return n
}

func (r *Relay) MailboxItems() int {
	_, total := r.store.depth("")
	return total
}
