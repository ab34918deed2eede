package rendezvous

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"time"

	dhtpb "github.com/libp2p/go-libp2p-kad-dht/pb"

	"github.com/cenkalti/backoff/v5"
	ds "github.com/ipfs/go-datastore"
	"github.com/ipfs/go-datastore/namespace"
	dht "github.com/libp2p/go-libp2p-kad-dht"
	record "github.com/libp2p/go-libp2p-record"
	"github.com/libp2p/go-libp2p/core/discovery"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	drouting "github.com/libp2p/go-libp2p/p2p/discovery/routing"

	"github.com/kithnet/kith/identity"
)

// The relays' DHT (DESIGN section 6). Only relays serve it: its protocol
// is /kith/kad/1.0.0, and nodes never join it; they ask a relay.
const (
	// DHTProtocolPrefix makes the DHT's protocol /kith/kad/1.0.0, apart
	// from the public IPFS DHT.
	DHTProtocolPrefix = "/kith"
	// ProfileNamespace is the DHT namespace of users' signed profiles:
	// the key of p's profile is "/kithprofile/" + the bytes of p.
	ProfileNamespace = "kithprofile"
	// RelayNamespace is what relays advertise themselves under, so that
	// they find each other.
	RelayNamespace = "kith/relays/1"
)

// ProfileKey returns the DHT key of p's signed profile.
func ProfileKey(p peer.ID) string { return "/" + ProfileNamespace + "/" + string(p) }

// ProfileValidator checks DHT records in ProfileNamespace: a record must
// be a profile signed by the peer its key names, and the best of several
// is the one with the highest sequence number. A relay's DHT stores and
// serves nothing else.
type ProfileValidator struct {
	Verifier *identity.Verifier
	Clock    func() time.Time
}

// Validate implements record.Validator.
func (v ProfileValidator) Validate(key string, value []byte) error {
	_, err := v.profile(key, value)
	return err
}

// Select implements record.Validator: the valid profile with the highest
// sequence number, the first of equals.
func (v ProfileValidator) Select(key string, values [][]byte) (int, error) {
	best, bestSeq := -1, uint64(0)
	for i, val := range values {
		p, err := v.profile(key, val)
		if err != nil {
			continue
		}
		if best < 0 || p.Seq > bestSeq {
			best, bestSeq = i, p.Seq
		}
	}
	if best < 0 {
		return 0, errors.New("rendezvous: no valid profile among the records")
	}
	return best, nil
}

func (v ProfileValidator) profile(key string, value []byte) (*identity.Profile, error) {
	ns, rest, err := record.SplitKey(key)
	if err != nil || ns != ProfileNamespace {
		return nil, fmt.Errorf("rendezvous: %q is not a profile key", key)
	}
	owner, err := peer.IDFromBytes([]byte(rest))
	if err != nil {
		return nil, fmt.Errorf("rendezvous: profile key: %w", err)
	}
	p, err := v.Verifier.Profile(value, v.Clock())
	if err != nil {
		return nil, err
	}
	if p.Owner != owner {
		return nil, fmt.Errorf("rendezvous: the profile is %s's, stored under %s's key", p.Owner, owner)
	}
	return p, nil
}

// routing is the relay's part in the DHT: finding other relays, and
// publishing and looking up profiles.
type routing struct {
	routingDeps
	dht  *dht.IpfsDHT
	disc *drouting.RoutingDiscovery
	put  chan *identity.Profile // profiles to publish, by one worker

	mu        sync.Mutex
	published map[peer.ID]published
	retries   map[peer.ID]*putRetry         // profiles whose put failed, to try again
	deferred  map[peer.ID]*identity.Profile // not put for want of any DHT peer
	found     map[peer.ID]foundProfile      // looked up in the DHT, for a while
}

// putRetry is the backoff of a profile whose put failed.
type putRetry struct {
	seq      uint64
	attempts int
	bo       *backoff.ExponentialBackOff
}

// A profile is put only when the DHT has a peer to put it to: until then
// (a relay just started, cut off, or alone) it waits in deferred, and
// all of them go out as soon as a peer appears. A put that fails with
// peers present is tried again after 1 s, 2 s, 4 s ... up to a minute
// apart, putRetries times; after that the republish pass puts it. Before
// this, a user who logged in while the relay had no DHT peers stayed
// unpublished until the next republish, hours later, and nobody whose
// relay looked them up could reach them.
const (
	deferredCheck     = 2 * time.Second
	putRetries        = 10
	putRetryFirst     = time.Second
	putRetryMaxPeriod = time.Minute
)

type published struct {
	seq uint64
	at  time.Time
}

type foundProfile struct {
	p  *identity.Profile // nil: not found
	at time.Time
}

// ttl is how long f is reused.
func (f foundProfile) ttl() time.Duration {
	if f.p == nil {
		return missTTL
	}
	return foundTTL
}

// foundTTL is how long a profile found by a lookup is reused, missTTL
// how long a miss is: short, for a user whose profile is on its way into
// the DHT (they just logged in at another relay) is found soon, and long
// enough that lookups of unknown peers do not each cost a DHT walk.
// foundMax bounds them.
const (
	foundTTL = 10 * time.Minute
	missTTL  = 15 * time.Second
	foundMax = 4096
)

// routingDeps is what the DHT routing needs of the relay.
type routingDeps struct {
	ctx      context.Context // the relay's: its goroutines stop with it
	wg       *sync.WaitGroup // the relay's, which Close waits for
	h        host.Host
	cfg      DHTConfig
	clock    func() time.Time
	log      *slog.Logger
	trace    tracer
	verifier *identity.Verifier
	// profiles returns every profile the relay stores, to republish.
	profiles func() []*identity.Profile
	// bootstrap are the configured relays to join the DHT through.
	bootstrap []peer.AddrInfo
	// admitted says whether p may take part in the DHT (Config.Admit).
	admitted func(p peer.ID) bool
	// allowPut takes a token of p's bucket of DHT puts (DHTConfig.PutRate).
	allowPut func(p peer.ID) bool
}

func startRouting(deps routingDeps, d ds.Batching) (*routing, error) {
	val := record.NamespacedValidator{ProfileNamespace: ProfileValidator{Verifier: deps.verifier, Clock: deps.clock}}
	kad, err := dht.New(deps.h,
		dht.Mode(dht.ModeServer),
		dht.ProtocolPrefix(DHTProtocolPrefix),
		dht.Validator(val),
		dht.Datastore(namespace.Wrap(unsynced(d), ds.NewKey("/kith/dht"))),
		dht.BootstrapPeers(deps.bootstrap...),
		// Only admitted relays are in the routing table, queried, or
		// answered: a stranger can neither store a record here nor read
		// one (its request is turned into one no handler takes, so the
		// stream is closed unanswered and nothing is stored).
		dht.RoutingTableFilter(func(_ any, p peer.ID) bool { return deps.admitted(p) }),
		dht.QueryFilter(func(_ any, ai peer.AddrInfo) bool { return deps.admitted(ai.ID) }),
		dht.OnRequestHook(func(_ context.Context, s network.Stream, req *dhtpb.Message) {
			p := s.Conn().RemotePeer()
			refuse := !deps.admitted(p)
			// What one relay may store here: its puts are rate limited
			// (every record must still be its owner's signed profile).
			if !refuse && req.GetType() == dhtpb.Message_PUT_VALUE && deps.allowPut != nil && !deps.allowPut(p) {
				refuse = true
			}
			if refuse {
				req.Type = dhtpb.Message_MessageType(-1)
			}
		}),
	)
	if err != nil {
		return nil, fmt.Errorf("rendezvous: dht: %w", err)
	}
	rt := &routing{
		routingDeps: deps, dht: kad, disc: drouting.NewRoutingDiscovery(kad),
		put:       make(chan *identity.Profile, 1024),
		published: map[peer.ID]published{}, retries: map[peer.ID]*putRetry{},
		deferred: map[peer.ID]*identity.Profile{}, found: map[peer.ID]foundProfile{},
	}
	rt.wg.Add(4)
	go rt.findRelays()
	go rt.publisher()
	go rt.republish()
	go rt.putDeferred()
	return rt, nil
}

func (rt *routing) close() { rt.dht.Close() }

// findRelays advertises this relay and stays connected to up to
// MaxRelayPeers others found through the DHT, so that gossip reaches them.
func (rt *routing) findRelays() {
	defer rt.wg.Done()
	var ttl time.Duration
	next := time.Duration(0)
	for {
		select {
		case <-rt.ctx.Done():
			return
		case <-time.After(next):
		}
		next = rt.cfg.FindInterval.D()
		if rt.dht.RoutingTable().Size() == 0 {
			next = min(next, 10*time.Second) // not joined yet: look again soon
			continue
		}
		ctx, cancel := context.WithTimeout(rt.ctx, time.Minute)
		if ttl <= next { // re-advertise before the record lapses
			var err error
			if ttl, err = rt.disc.Advertise(ctx, RelayNamespace); err != nil {
				rt.log.Debug("advertising the relay in the DHT", "err", err)
				ttl = 0
			}
		} else {
			ttl -= next
		}
		found, err := rt.disc.FindPeers(ctx, RelayNamespace, discovery.Limit(4*rt.cfg.MaxRelayPeers+4))
		if err != nil {
			cancel()
			rt.log.Debug("looking for relays in the DHT", "err", err)
			continue
		}
		kept := 0
		for ai := range found {
			if ai.ID == rt.h.ID() || len(ai.Addrs) == 0 || !rt.admitted(ai.ID) {
				continue
			}
			if kept >= rt.cfg.MaxRelayPeers {
				continue // drain the channel
			}
			if rt.h.Network().Connectedness(ai.ID) != network.Connected {
				cctx, ccancel := context.WithTimeout(ctx, 10*time.Second)
				err := rt.h.Connect(cctx, ai)
				ccancel()
				if err != nil {
					rt.log.Debug("cannot reach a relay found in the DHT", "peer", ai.ID, "err", err)
					continue
				}
			}
			rt.h.ConnManager().Protect(ai.ID, "kith-relay-peer")
			kept++
		}
		cancel()
		rt.trace.dhtRelayPeers(kept)
	}
}

// publish queues p for the DHT if it is newer than what this relay
// published, or was published more than half a republish period ago.
func (rt *routing) publish(p *identity.Profile) {
	now := rt.clock()
	rt.mu.Lock()
	last, ok := rt.published[p.Owner]
	fresh := ok && last.seq >= p.Seq && now.Sub(last.at) < rt.cfg.Republish.D()/2
	rt.mu.Unlock()
	if fresh {
		return
	}
	select {
	case rt.put <- p:
	default: // full: put when there is room
		rt.deferPut(p)
	}
}

// deferPut keeps p for putDeferred, replacing an older profile of its
// owner.
func (rt *routing) deferPut(p *identity.Profile) {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	if old := rt.deferred[p.Owner]; old == nil || old.Seq <= p.Seq {
		rt.deferred[p.Owner] = p
	}
}

// publisher puts queued profiles, one at a time.
func (rt *routing) publisher() {
	defer rt.wg.Done()
	for {
		var p *identity.Profile
		select {
		case <-rt.ctx.Done():
			return
		case p = <-rt.put:
		}
		rt.mu.Lock()
		last, ok := rt.published[p.Owner]
		rt.mu.Unlock()
		if ok && last.seq > p.Seq {
			continue // a newer profile went out meanwhile
		}
		if rt.dht.RoutingTable().Size() == 0 {
			rt.trace.dhtProfile("put_deferred")
			rt.deferPut(p)
			continue
		}
		ctx, cancel := context.WithTimeout(rt.ctx, 30*time.Second)
		err := rt.dht.PutValue(ctx, ProfileKey(p.Owner), p.Raw)
		cancel()
		if err != nil {
			rt.trace.dhtProfile("put_failed")
			rt.log.Debug("publishing a profile", "peer", p.Owner, "err", err)
			rt.retryLater(p)
			continue
		}
		rt.trace.dhtProfile("put")
		rt.mu.Lock()
		rt.published[p.Owner] = published{seq: p.Seq, at: rt.clock()}
		if rs := rt.retries[p.Owner]; rs != nil && rs.seq <= p.Seq {
			delete(rt.retries, p.Owner)
		}
		rt.mu.Unlock()
	}
}

// putDeferred queues the deferred profiles (no DHT peer then, or the
// queue was full) once the DHT has a peer.
func (rt *routing) putDeferred() {
	defer rt.wg.Done()
	t := time.NewTicker(deferredCheck)
	defer t.Stop()
	for {
		select {
		case <-rt.ctx.Done():
			return
		case <-t.C:
		}
		if rt.dht.RoutingTable().Size() == 0 {
			continue
		}
		rt.mu.Lock()
		ps := slices.Collect(maps.Values(rt.deferred))
		clear(rt.deferred)
		rt.mu.Unlock()
		if !rt.queue(ps) {
			return
		}
	}
}

// queue hands ps to the publisher, waiting for room; false if the relay
// closed first.
func (rt *routing) queue(ps []*identity.Profile) bool {
	for _, p := range ps {
		select {
		case <-rt.ctx.Done():
			return false
		case rt.put <- p:
		}
	}
	return true
}

// retryLater queues p again after its backoff, unless it has failed
// putRetries times (the republish pass has it then).
func (rt *routing) retryLater(p *identity.Profile) {
	rt.mu.Lock()
	rs := rt.retries[p.Owner]
	if rs == nil || rs.seq != p.Seq {
		bo := backoff.NewExponentialBackOff()
		bo.InitialInterval, bo.MaxInterval = putRetryFirst, putRetryMaxPeriod
		rs = &putRetry{seq: p.Seq, bo: bo}
		rt.retries[p.Owner] = rs
	}
	rs.attempts++
	if rs.attempts > putRetries {
		delete(rt.retries, p.Owner)
		rt.mu.Unlock()
		rt.log.Warn("publishing a profile failed repeatedly; the republish pass will try again", "peer", p.Owner)
		return
	}
	wait := rs.bo.NextBackOff()
	rt.mu.Unlock()
	time.AfterFunc(wait, func() {
		if rt.ctx.Err() != nil {
			return
		}
		select {
		case rt.put <- p:
		default: // full: put when there is room
			rt.deferPut(p)
		}
	})
}

// republish puts every profile stored here again, each Republish period,
// so that the records of users who have not logged in lately live on.
func (rt *routing) republish() {
	defer rt.wg.Done()
	t := time.NewTicker(rt.cfg.Republish.D())
	defer t.Stop()
	for {
		select {
		case <-rt.ctx.Done():
			return
		case <-t.C:
		}
		if !rt.queue(rt.profiles()) {
			return
		}
	}
}

// lookup returns p's newest profile: the one stored here, else one found
// in the DHT (remembered for foundTTL, a miss for missTTL).
func (rt *routing) lookup(ctx context.Context, p peer.ID) *identity.Profile {
	now := rt.clock()
	rt.mu.Lock()
	f, ok := rt.found[p]
	rt.mu.Unlock()
	if ok && now.Sub(f.at) < f.ttl() {
		return f.p
	}
	var prof *identity.Profile
	raw, err := rt.dht.GetValue(ctx, ProfileKey(p))
	if err == nil {
		// The DHT validated it; check again, as for anything received.
		if got, verr := rt.verifier.Profile(raw, now); verr == nil && got.Owner == p {
			prof = got
		}
	}
	rt.trace.dhtProfile(map[bool]string{true: "found", false: "not_found"}[prof != nil])
	if ctx.Err() != nil && prof == nil {
		return nil // cut short: do not remember a miss
	}
	rt.mu.Lock()
	if len(rt.found) >= foundMax {
		for k, v := range rt.found {
			if now.Sub(v.at) >= v.ttl() || len(rt.found) >= foundMax {
				delete(rt.found, k)
			}
		}
	}
	rt.found[p] = foundProfile{p: prof, at: now}
	rt.mu.Unlock()
	return prof
}

// unsynced returns d with writes that do not wait for a sync, where d can
// (the pebble store): DHT records are republished by their owners and by
// this relay, so losing the last few in a crash is harmless, and a synced
// write per login cost the relay a disk flush per user.
func unsynced(d ds.Batching) ds.Batching {
	if u, ok := d.(unsyncedBatcher); ok {
		return &unsyncedDS{Batching: d, u: u}
	}
	return d
}

type unsyncedDS struct {
	ds.Batching
	u unsyncedBatcher
}

func (d *unsyncedDS) Put(ctx context.Context, k ds.Key, v []byte) error {
	b, err := d.u.UnsyncedBatch(ctx)
	if err != nil {
		return err
	}
	if err := b.Put(ctx, k, v); err != nil {
		return err
	}
	return b.Commit(ctx)
}

func (d *unsyncedDS) Delete(ctx context.Context, k ds.Key) error {
	b, err := d.u.UnsyncedBatch(ctx)
	if err != nil {
		return err
	}
	if err := b.Delete(ctx, k); err != nil {
		return err
	}
	return b.Commit(ctx)
}

func (d *unsyncedDS) Batch(ctx context.Context) (ds.Batch, error) { return d.u.UnsyncedBatch(ctx) }
