package node

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	mrand "math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cenkalti/backoff/v5"
	ds "github.com/ipfs/go-datastore"
	"github.com/ipfs/go-datastore/query"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/peerstore"
	"github.com/libp2p/go-libp2p/core/record"
	ma "github.com/multiformats/go-multiaddr"
	"google.golang.org/protobuf/proto"

	"github.com/kithnet/kith/identity"
	"github.com/kithnet/kith/protocols"
	"github.com/kithnet/kith/protocols/client"
	"github.com/kithnet/kith/protocols/pb"

	"github.com/kithnet/kith/node/book"
)

// ServiceName is the libp2p resource manager service of the node's streams.
const ServiceName = "kith.node"

type options struct {
	clock      func() time.Time
	log        *slog.Logger
	rendezvous []peer.AddrInfo
	name       string
	retry      time.Duration
	directWait time.Duration
	refresh    time.Duration
	jitterSeed *uint64
}

// Option configures a Node.
type Option func(*options)

// WithClock sets the clock (default time.Now).
func WithClock(now func() time.Time) Option { return func(o *options) { o.clock = now } }

// WithLogger sets the logger (default slog.Default()).
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.log = l } }

// WithRendezvous sets the rendezvous nodes to log in to.
func WithRendezvous(ais ...peer.AddrInfo) Option {
	return func(o *options) { o.rendezvous = append(o.rendezvous, ais...) }
}

// WithName sets the user's display name when the datastore has none yet.
func WithName(name string) Option { return func(o *options) { o.name = name } }

// WithRetryInterval sets how often queued messages are retried (default 5s).
func WithRetryInterval(d time.Duration) Option { return func(o *options) { o.retry = d } }

// WithProfileRefresh sets how long a peer's profile, once asked for and
// found, is trusted before it is asked for again (default 1h).
func WithProfileRefresh(d time.Duration) Option { return func(o *options) { o.refresh = d } }

// WithJitterSeed makes the random spread of the node's reconnect
// backoffs come from seed, the same every run (default: random). A
// simulation uses it so that a seed gives the same run.
func WithJitterSeed(seed uint64) Option { return func(o *options) { o.jitterSeed = &seed } }

// WithDirectTimeout bounds one attempt to reach a peer directly (default 5s).
func WithDirectTimeout(d time.Duration) Option { return func(o *options) { o.directWait = d } }

// Node is a user's Kith node on a libp2p host: the book of friends in a
// datastore, sessions with rendezvous nodes, direct requests to friends'
// nodes, and the operations the local API exposes. It owns neither its
// host nor its datastore.
type Node struct {
	h     host.Host
	key   crypto.PrivKey
	ds    ds.Batching
	clock func() time.Time
	log   *slog.Logger
	opts  options

	mu       sync.Mutex // guards book and the datastore writes that follow it, and resolved
	book     *book.Book
	resolved map[peer.ID]time.Time // when each peer's profile was last asked for
	jitterMu sync.Mutex
	jitter   *mrand.Rand     // the spread of backoffs, when WithJitterSeed set it
	making   map[string]bool // work in flight, by key: shares, requests and answers being sent, shares made for an approval or a pack

	events *hub

	relayMu sync.Mutex
	relays  map[peer.ID]*relayState

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	kickC  chan struct{}

	lastRefresh time.Time // of friends' profiles; retryLoop's own
}

type relayState struct {
	info     peer.AddrInfo
	loggedIn bool
	lastErr  string
	relogin  func() // ends the session so that it logs in again at once
	seq      uint64 // the profile sequence its current login carried
}

// New starts a node for key on h, with its state in d.
func New(ctx context.Context, h host.Host, d ds.Batching, key crypto.PrivKey, opts ...Option) (*Node, error) {
	o := options{clock: time.Now, log: slog.Default(), retry: 5 * time.Second, directWait: 5 * time.Second, refresh: time.Hour}
	for _, opt := range opts {
		opt(&o)
	}
	id, err := peer.IDFromPrivateKey(key)
	if err != nil {
		return nil, err
	}
	if id != h.ID() {
		return nil, fmt.Errorf("node: the host is %s but the key is %s's", h.ID(), id)
	}
	bk, err := book.NewBook(key, o.name)
	if err != nil {
		return nil, err
	}
	n := &Node{h: h, key: key, ds: d, clock: o.clock, log: o.log.With("node", id.String()), opts: o,
		book: bk, events: newHub(), relays: map[peer.ID]*relayState{}, kickC: make(chan struct{}, 1)}
	if o.jitterSeed != nil {
		n.jitter = mrand.New(mrand.NewPCG(*o.jitterSeed, 0))
	}
	if err := n.load(ctx); err != nil {
		return nil, err
	}
	if n.book.Settings.Name == "" {
		return nil, fmt.Errorf("node: no name: run kith init --name NAME first")
	}
	if err := n.commit(n.book.SaveSettings()); err != nil {
		return nil, err
	}
	keyMuts, _, err := n.book.EnsureKeys(n.clock())
	if err != nil {
		return nil, fmt.Errorf("node: keys: %w", err)
	}
	if err := n.commit(keyMuts); err != nil {
		return nil, err
	}
	if err := n.commit(n.book.SetHomeRelays(n.relayAddrs(), n.clock())); err != nil {
		return nil, err
	}
	prof, err := n.profile()
	if err != nil {
		return nil, err
	}
	n.book.SetProfile(prof)
	n.ctx, n.cancel = context.WithCancel(context.Background())
	h.SetStreamHandler(protocols.AddProtocol, n.handleAdd)
	h.SetStreamHandler(protocols.LegacyAddProtocol, n.handleAdd)
	h.SetStreamHandler(protocols.DirectShareProtocol, n.handleDirectShare)
	for _, ai := range o.rendezvous {
		n.relays[ai.ID] = &relayState{info: ai}
		h.Peerstore().AddAddrs(ai.ID, ai.Addrs, peerstore.PermanentAddrTTL)
		n.wg.Add(1)
		go n.runRelay(ai)
	}
	for _, l := range n.book.LeftRelays() {
		if n.clock().Sub(l.Since) > leftRelayMaxAge {
			if err := n.commit(n.book.RelayDrained(l.Peer)); err != nil {
				return nil, err
			}
			continue
		}
		ai := peer.AddrInfo{ID: l.Peer, Addrs: book.ParseAddrs(l.Addrs)}
		for i, a := range ai.Addrs {
			ai.Addrs[i], _ = ma.SplitLast(a) // without the /p2p/ part
		}
		h.Peerstore().AddAddrs(ai.ID, ai.Addrs, peerstore.TempAddrTTL)
		n.wg.Add(1)
		go n.drainRelay(ai, l.Since.Add(leftRelayMaxAge))
	}
	n.wg.Add(1)
	go n.retryLoop()
	return n, nil
}

func (n *Node) load(ctx context.Context) error {
	res, err := n.ds.Query(ctx, query.Query{Prefix: "/kith/node"})
	if err != nil {
		return fmt.Errorf("node: load: %w", err)
	}
	defer res.Close()
	for r := range res.Next() {
		if r.Error != nil {
			return fmt.Errorf("node: load: %w", r.Error)
		}
		if err := n.book.Load(r.Key, r.Value); err != nil {
			n.log.Warn("skipping unreadable record", "key", r.Key, "err", err)
		}
	}
	return nil
}

// commit writes mutations in one atomic batch. Called with mu held (or
// before the node is shared). If the write fails the book is reloaded from
// the datastore, so memory never runs ahead of disk.
func (n *Node) commit(muts []book.Mutation) error {
	if len(muts) == 0 {
		return nil
	}
	ctx := context.Background()
	b, err := n.ds.Batch(ctx)
	if err == nil {
		for _, m := range muts {
			if m.Del {
				err = b.Delete(ctx, m.Key)
			} else {
				err = b.Put(ctx, m.Key, m.Value)
			}
			if err != nil {
				break
			}
		}
		if err == nil {
			err = b.Commit(ctx)
		}
	}
	if err != nil {
		n.log.Error("datastore write failed; reloading", "err", err)
		fresh, ferr := book.NewBook(n.key, n.book.Settings.Name)
		if ferr == nil {
			old := n.book
			n.book = fresh
			if lerr := n.load(ctx); lerr != nil {
				n.book = old
			}
		}
		return fmt.Errorf("node: saving: %w", err)
	}
	return nil
}

// do runs f on the book with the lock held and commits what it returns.
func (n *Node) do(f func(b *book.Book) ([]book.Mutation, error)) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	muts, err := f(n.book)
	if cerr := n.commit(muts); cerr != nil {
		return cerr
	}
	return err
}

// note records bookkeeping that follows a send (that it was sent, how the
// relay answered, a profile learnt): a change made only of mutations. If
// its write fails, commit has logged it and reloaded the book from disk,
// so the book says what the disk says: the item is still queued and the
// next flush sends it again under the same id, which its recipient and the
// relays absorb. Nothing more is to be done here, so there is no error.
func (n *Node) note(f func(b *book.Book) []book.Mutation) {
	_ = n.do(func(b *book.Book) ([]book.Mutation, error) { return f(b), nil })
}

// Close stops the node (not its host or datastore).
func (n *Node) Close() error {
	n.h.RemoveStreamHandler(protocols.AddProtocol)
	n.h.RemoveStreamHandler(protocols.LegacyAddProtocol)
	n.h.RemoveStreamHandler(protocols.DirectShareProtocol)
	n.cancel()
	n.wg.Wait()
	return nil
}

// ID returns the user's peer id.
func (n *Node) ID() peer.ID { return n.h.ID() }

// Host returns the node's host.
func (n *Node) Host() host.Host { return n.h }

// Subscribe returns a channel of live events and a function to stop.
func (n *Node) Subscribe() (<-chan Event, func()) { return n.events.subscribe() }

func (n *Node) publish(typ, id string, p peer.ID, text string) {
	n.events.publish(Event{Type: typ, ID: id, Peer: p.String(), Text: text, At: n.clock()})
}

func (n *Node) kick() {
	select {
	case n.kickC <- struct{}{}:
	default:
	}
}

// ---- rendezvous sessions

func (n *Node) relayAddrs() []string {
	var out []string
	for _, ai := range n.opts.rendezvous {
		for _, a := range ai.Addrs {
			out = append(out, a.String()+"/p2p/"+ai.ID.String())
		}
	}
	return out
}

// profile signs the user's current profile: the name sealed under the
// profile key, the current encryption key, the home relays.
func (n *Node) profile() ([]byte, error) {
	n.mu.Lock()
	info := n.book.ProfileInfo(n.clock())
	n.mu.Unlock()
	info.Relays = book.ParseAddrs(n.relayAddrs())
	return identity.NewProfile(n.key, info, n.clock())
}

// peerRecord returns the host's signed peer record.
func (n *Node) peerRecord() []byte {
	if cab, ok := peerstore.GetCertifiedAddrBook(n.h.Peerstore()); ok {
		if env := cab.GetPeerRecord(n.h.ID()); env != nil {
			if b, err := env.Marshal(); err == nil {
				return b
			}
		}
	}
	rec := peer.PeerRecordFromAddrInfo(peer.AddrInfo{ID: n.h.ID(), Addrs: n.h.Addrs()})
	env, err := record.Seal(rec, n.key)
	if err != nil {
		return nil
	}
	b, _ := env.Marshal()
	return b
}

// relayWords says in a person's words why the session with a rendezvous
// node failed; the log keeps the error itself.
func relayWords(err error) string {
	var se *protocols.StatusError
	msg := err.Error()
	switch {
	case errors.As(err, &se) && se.Text != "":
		return "the rendezvous node refused: " + se.Text
	case errors.Is(err, context.DeadlineExceeded) || strings.Contains(msg, "timeout") || strings.Contains(msg, "deadline"):
		return "the rendezvous node does not answer (retrying)"
	case errors.Is(err, protocols.ErrTruncated) || errors.Is(err, protocols.ErrUndecodable) || errors.Is(err, io.EOF) ||
		strings.Contains(msg, "stream reset") || strings.Contains(msg, "connection reset") || strings.Contains(msg, "closed"):
		return "the connection to the rendezvous node was cut (reconnecting)"
	case strings.Contains(msg, "dial") || strings.Contains(msg, "connection refused") || strings.Contains(msg, "no addresses"):
		return "cannot reach the rendezvous node: is it running, and is its address right? (retrying)"
	}
	return msg
}

func (n *Node) setRelay(id peer.ID, loggedIn bool, err error) {
	n.relayMu.Lock()
	defer n.relayMu.Unlock()
	st := n.relays[id]
	if st == nil {
		return
	}
	changed := st.loggedIn != loggedIn
	st.loggedIn = loggedIn
	if err != nil {
		st.lastErr = relayWords(err)
	} else if loggedIn {
		st.lastErr = ""
	}
	if changed {
		state := "offline"
		if loggedIn {
			state = "online"
		}
		go n.publish("relay", "", id, state)
	}
}

// loggedInRelays returns the rendezvous nodes the node is logged in to.
func (n *Node) loggedInRelays() []peer.ID {
	n.relayMu.Lock()
	defer n.relayMu.Unlock()
	var out []peer.ID
	for _, ai := range n.opts.rendezvous {
		if st := n.relays[ai.ID]; st != nil && st.loggedIn {
			out = append(out, ai.ID)
		}
	}
	return out
}

// runRelay keeps a session with one rendezvous node: connect, log in,
// process the inbox, reconnect with backoff.
func (n *Node) runRelay(ai peer.AddrInfo) {
	defer n.wg.Done()
	bo := backoff.NewExponentialBackOff()
	bo.InitialInterval = 250 * time.Millisecond
	bo.MaxInterval = 15 * time.Second
	for n.ctx.Err() == nil {
		err := n.session(ai)
		if errors.Is(err, errRelogin) {
			continue // a new profile to publish: at once, still logged in
		}
		n.setRelay(ai.ID, false, err)
		if n.ctx.Err() != nil {
			return
		}
		if err != nil {
			n.log.Debug("rendezvous session ended", "relay", ai.ID, "err", err)
		}
		select {
		case <-n.ctx.Done():
			return
		case <-time.After(n.nextBackOff(bo)):
		}
		if err == nil {
			bo.Reset()
		}
	}
}

func (n *Node) session(ai peer.AddrInfo) error {
	ctx, cancel := context.WithTimeout(n.ctx, 10*time.Second)
	err := n.h.Connect(ctx, ai)
	cancel()
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	n.mu.Lock()
	seq := n.book.Settings.Seq
	n.mu.Unlock()
	prof, err := n.profile()
	if err != nil {
		return err
	}
	in, err := client.Login(n.ctx, n.h, ai.ID, prof, n.peerRecord(), 0)
	if err != nil {
		return err
	}
	n.relayMu.Lock()
	if st := n.relays[ai.ID]; st != nil {
		st.seq = seq
	}
	n.relayMu.Unlock()
	defer in.Close()
	stop := context.AfterFunc(n.ctx, func() { in.Close() })
	defer stop()
	var relogin atomic.Bool
	n.relayMu.Lock()
	if st := n.relays[ai.ID]; st != nil {
		st.relogin = func() { relogin.Store(true); in.Close() }
	}
	n.relayMu.Unlock()
	n.mu.Lock()
	stale := n.book.Settings.Seq > seq
	n.mu.Unlock()
	if stale {
		// The profile changed while this login was on its way, and
		// republish found no session to end: log in again with it.
		return errRelogin
	}
	n.h.ConnManager().Protect(ai.ID, "kith-rendezvous")
	n.setRelay(ai.ID, true, nil)
	n.log.Debug("logged in", "relay", ai.ID, "waiting", in.Result.Waiting)
	// Flush and refresh once what waited here is in: sending requests
	// the inbox answers, or asking for profiles of friends it is about to
	// add, is work thrown away (and races the inbox). Should fewer items
	// come (some expired meanwhile), the retry tick does it.
	waiting, handled := in.Result.Waiting, uint64(0)
	if waiting == 0 {
		n.kick()
	}
	var acks []uint64
	for {
		it, err := in.Next()
		if err != nil {
			if relogin.Load() {
				return errRelogin
			}
			return err
		}
		n.handleItem(it)
		if handled++; handled == waiting {
			n.kick()
		}
		// Each item is stored before it is acknowledged; a burst is
		// acknowledged in one frame.
		acks = append(acks, it.Seq)
		if !in.More() || len(acks) >= 256 {
			if err := in.Ack(acks...); err != nil {
				return err
			}
			acks = acks[:0]
		}
	}
}

// claimUnsent returns the queued requests and answers nobody is sending
// now, claimed for the caller (sendRequests and sendAnswer release them).
// What a pick, an invite or an accept is sending is theirs to send: sent
// twice, it would reach its recipient twice. Called with n.mu held.
func (n *Node) claimUnsent() (reqs, answers []*book.Request) {
	reqs, answers = n.book.Unsent(n.clock())
	reqs = slices.DeleteFunc(reqs, func(r *book.Request) bool { return n.claimMaking(requestKey(r)) })
	answers = slices.DeleteFunc(answers, func(r *book.Request) bool { return n.claimMaking(answerKey(r)) })
	return reqs, answers
}

// nextBackOff is bo's next wait, spread by ±50% as backoff's own
// randomization does, from the node's seeded source if it has one.
func (n *Node) nextBackOff(bo *backoff.ExponentialBackOff) time.Duration {
	if n.jitter == nil {
		return bo.NextBackOff()
	}
	bo.RandomizationFactor = 0
	d := bo.NextBackOff()
	n.jitterMu.Lock()
	u := n.jitter.Float64()
	n.jitterMu.Unlock()
	return time.Duration(float64(d) * (0.5 + u))
}

// errRelogin ends a session whose login carried a profile that is no
// longer the user's newest.
var errRelogin = errors.New("a new profile to publish")

// republish signs the user's profile again and logs in again at every
// rendezvous node with it: a relay learns a user's newest profile (name,
// who may share them, encryption key) from their login, and refuses
// shares by it at once; friends' nodes fetch it from there.
func (n *Node) republish() error {
	prof, err := n.profile()
	if err != nil {
		return err
	}
	n.mu.Lock()
	n.book.SetProfile(prof)
	seq := n.book.Settings.Seq
	n.mu.Unlock()
	n.relayMu.Lock()
	var waiting []*relayState
	for _, st := range n.relays {
		if st.relogin != nil && st.loggedIn && st.seq < seq {
			st.relogin()
			waiting = append(waiting, st)
		}
	}
	n.relayMu.Unlock()
	// Until the relays hold the new profile they judge by the old one: a
	// change the user was told is made must hold when they are told. A
	// relay that does not log in again within republishWait gets it at
	// its next login.
	deadline := time.Now().Add(republishWait)
	for time.Now().Before(deadline) && n.ctx.Err() == nil {
		done := true
		n.relayMu.Lock()
		for _, st := range waiting {
			done = done && st.seq >= seq
		}
		n.relayMu.Unlock()
		if done {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	return nil
}

// republishWait bounds how long a change of profile waits for the relays
// to log the node in again with it.
const republishWait = 5 * time.Second

// leftRelayMaxAge is how long the node keeps trying a relay it left: a
// relay keeps an undelivered item 30 days by default (mailbox_ttl).
const leftRelayMaxAge = 31 * 24 * time.Hour

// drainIdle is how long a drain waits for more items once it has taken
// as many as were waiting at its login; drainStall how long before that
// (a silent relay: the drain ends and is tried again later).
const (
	drainIdle  = time.Second
	drainStall = 30 * time.Second
)

// drainRelay logs in once more at a relay the user left, takes what it
// stored for them, and forgets it. An unreachable relay is tried again
// with backoff (up to 15 minutes apart) until giveUp, when whatever it
// held has expired there.
func (n *Node) drainRelay(ai peer.AddrInfo, giveUp time.Time) {
	defer n.wg.Done()
	bo := backoff.NewExponentialBackOff()
	bo.InitialInterval = time.Second
	bo.MaxInterval = 15 * time.Minute
	forget := func() {
		if err := n.do(func(b *book.Book) ([]book.Mutation, error) { return b.RelayDrained(ai.ID), nil }); err != nil {
			n.log.Error("forgetting a relay the user left", "relay", ai.ID, "err", err)
		}
	}
	for n.ctx.Err() == nil {
		taken, err := n.drain(ai)
		if err == nil {
			forget()
			n.log.Info("took what a relay the user left held", "relay", ai.ID, "items", taken)
			return
		}
		if n.clock().After(giveUp) {
			forget()
			n.log.Warn("gave up on a relay the user left: unreachable past its mailboxes' life", "relay", ai.ID, "err", err)
			return
		}
		n.log.Debug("draining a relay the user left", "relay", ai.ID, "err", err)
		select {
		case <-n.ctx.Done():
			return
		case <-time.After(n.nextBackOff(bo)):
		}
	}
}

// drain is one login at a left relay: it takes items until as many as
// were waiting have come and none has followed for drainIdle.
func (n *Node) drain(ai peer.AddrInfo) (taken int, err error) {
	ctx, cancel := context.WithTimeout(n.ctx, 10*time.Second)
	err = n.h.Connect(ctx, ai)
	cancel()
	if err != nil {
		return 0, fmt.Errorf("connect: %w", err)
	}
	prof, err := n.profile()
	if err != nil {
		return 0, err
	}
	in, err := client.Login(n.ctx, n.h, ai.ID, prof, nil, 0)
	if err != nil {
		return 0, err
	}
	defer in.Close()
	waiting := int(in.Result.Waiting)
	var idled atomic.Bool
	idle := time.AfterFunc(drainIdle, func() {
		idled.Store(true)
		in.Close()
	})
	defer idle.Stop()
	stop := context.AfterFunc(n.ctx, func() { in.Close() })
	defer stop()
	var acks []uint64
	for {
		if taken >= waiting {
			idle.Reset(drainIdle)
		} else {
			idle.Reset(drainStall)
		}
		it, err := in.Next()
		if err != nil {
			if idled.Load() && taken >= waiting && n.ctx.Err() == nil {
				return taken, nil // closed by the idle timer: drained
			}
			if idled.Load() {
				return taken, fmt.Errorf("%d of %d waiting items came, then nothing for %s", taken, waiting, drainStall)
			}
			return taken, err
		}
		n.handleItem(it)
		taken++
		acks = append(acks, it.Seq)
		if !in.More() || len(acks) >= 256 {
			if err := in.Ack(acks...); err != nil {
				return taken, err
			}
			acks = acks[:0]
		}
	}
}

// handleItem stores what the relay pushed. It returns once the item is
// durable (or was refused), so the acknowledgement that follows is safe.
func (n *Node) handleItem(it *pb.InboxItem) {
	now := n.clock()
	from := peer.ID(it.From)
	switch it.Kind {
	case pb.ItemKind_SHARE:
		n.receiveShare(it.Payload, it.Refused, fmt.Sprintf("%x", it.Id), from, now)
	case pb.ItemKind_ADD_REQUEST:
		var wire pb.AddRequest
		if err := proto.Unmarshal(it.Payload, &wire); err != nil {
			return
		}
		u, err := protocols.DecodeAddRequest(&wire)
		if err != nil {
			n.log.Info("friend request dropped", "via", "relay", "err", err)
			return
		}
		n.receiveRequest(u, "relay")
	case pb.ItemKind_ADD_ANSWER:
		var ans pb.AddAnswer
		if err := proto.Unmarshal(it.Payload, &ans); err != nil {
			return
		}
		n.receiveAnswer(&ans)
	case pb.ItemKind_CONSENT:
		var m pb.ConsentMessage
		if err := proto.Unmarshal(it.Payload, &m); err != nil {
			return
		}
		n.receiveConsent(&m, "")
	case pb.ItemKind_WITHDRAWAL:
		w, err := protocols.DecodeWithdrawal(it.Payload)
		if err != nil {
			return
		}
		if err := n.do(func(b *book.Book) ([]book.Mutation, error) { return b.Withdraw(w) }); err != nil {
			n.log.Warn("withdrawal refused", "err", err)
			return
		}
		n.publish("withdrawal", fmt.Sprintf("%x", w.ItemId), from, "withdrawn")
	default:
		n.log.Info("inbox item of a kind this node does not know, skipped", "kind", it.Kind, "from", from)
	}
}

// receiveShare hands a share that arrived via a relay (with the items it
// refused) or directly to the book, and tells the user what came of it.
func (n *Node) receiveShare(raw []byte, refused []*pb.Failure, id string, from peer.ID, now time.Time) error {
	var s *book.ReceivedShare
	fresh := false
	err := n.do(func(b *book.Book) ([]book.Mutation, error) {
		var muts []book.Mutation
		var err error
		s, muts, err = b.ReceiveShare(raw, refused, now)
		fresh = len(muts) > 0
		return muts, err
	})
	if err != nil {
		n.log.Warn("share refused", "from", from, "err", err)
		n.publish("refused", id, from, err.Error())
		return err
	}
	if !fresh {
		n.publish("duplicate", s.ID.String(), s.From, "a share received again")
		return nil
	}
	n.publish("share", s.ID.String(), s.From, fmt.Sprintf("%s shared %d friends with you", s.FromName, len(s.Items)))
	return nil
}

// handleDirectShare takes a share its sharer's node hands over directly,
// because none of the user's home relays could be reached: it is
// verified end to end as any share, and answered DELIVERED or REFUSED.
func (n *Node) handleDirectShare(st network.Stream) {
	if err := st.Scope().SetService(ServiceName); err != nil {
		st.Reset()
		return
	}
	if err := st.Scope().ReserveMemory(protocols.MaxShareMessage, network.ReservationPriorityAlways); err != nil {
		st.Reset()
		return
	}
	defer st.Scope().ReleaseMemory(protocols.MaxShareMessage)
	st.SetDeadline(time.Now().Add(protocols.StreamDeadline))
	resp := &pb.ShareResponse{Status: pb.Status_OK}
	frame, err := protocols.NewReader(st, protocols.MaxShareMessage).ReadFrame()
	var u *protocols.UnverifiedShare
	if err == nil {
		u, err = protocols.DecodeShare(frame, protocols.Limits{})
	}
	if err == nil && u.Sharer != st.Conn().RemotePeer() {
		err = protocols.Errorf(pb.Status_UNAUTHORIZED, "the share is not the sender's")
	}
	if err == nil {
		resp.ShareId = u.ID[:]
		if rerr := n.receiveShare(u.Raw, nil, u.ID.String(), u.Sharer, n.clock()); rerr != nil {
			err = protocols.Errorf(pb.Status_REFUSED, "%v", rerr)
		} else {
			resp.Targets = []*pb.TargetResult{{Peer: []byte(n.ID()), Delivery: pb.Delivery_DELIVERED}}
		}
	}
	if err != nil {
		resp.Status = protocols.StatusOf(err)
		resp.Text = err.Error()
	}
	protocols.WriteMsg(st, resp)
	st.Close()
}

// receiveRequest hands a friend request that arrived via the relay or
// directly to the book, and tells the user what came of it.
func (n *Node) receiveRequest(u *protocols.UnverifiedAddRequest, via string) error {
	var r *book.Request
	fresh := false
	err := n.do(func(b *book.Book) ([]book.Mutation, error) {
		var muts []book.Mutation
		var err error
		r, muts, err = b.ReceiveDecoded(u, n.clock())
		fresh = len(muts) > 0
		return muts, err
	})
	if err != nil {
		n.log.Info("friend request dropped", "via", via, "err", err)
		n.publish("refused", "", "", err.Error())
		return err
	}
	if !fresh {
		n.publish("duplicate", r.ID.String(), r.Peer, "a request received again")
		return nil
	}
	n.mu.Lock()
	stale := n.book.TakeProfileStale()
	n.mu.Unlock()
	if stale { // an invite was used up: the relays refuse it from now on
		go func() {
			if err := n.republish(); err != nil {
				n.log.Warn("signing the profile", "err", err)
			}
		}()
	}
	text := fmt.Sprintf("%s would like to be your friend", r.Name)
	if r.IntroducerVerified {
		text = strings.TrimSuffix(provenance(r, ""), " (verified)")
	}
	n.publish("request", r.ID.String(), r.Peer, text)
	n.mu.Lock()
	pack := n.book.PackOf(r)
	n.mu.Unlock()
	if pack != nil && pack.AutoAccept {
		// The welcome pack says so: accepted at once, the share follows.
		go func() {
			if _, err := n.Accept(n.ctx, r.ID.String()); err != nil {
				n.log.Info("a welcome pack's request was not accepted", "peer", r.Peer, "err", err)
			}
		}()
	}
	return nil
}

// receiveCancel takes a requester's revocation of the offer in a request
// they sent here: the request is withdrawn. Only the requester may cancel.
func (n *Node) receiveCancel(raw []byte, from peer.ID) error {
	rev, err := n.book.Verifier().Revocation(raw)
	if err != nil {
		return protocols.Errorf(pb.Status_REFUSED, "the cancel does not verify: %v", err)
	}
	if rev.Revoker != from {
		return protocols.Errorf(pb.Status_UNAUTHORIZED, "a cancel signed by %s was sent by %s", rev.Revoker, from)
	}
	return n.do(func(b *book.Book) ([]book.Mutation, error) {
		// Only a cancel of a pending request of theirs is kept: anything
		// else (their own offer to no one, say) would only fill the store.
		if !b.HasPendingOffer(from, rev.AttestationID) {
			return nil, nil
		}
		muts, err := b.ApplyRevocation(raw)
		if len(muts) > 0 {
			go n.publish("withdrawal", "", from, "a friend request was cancelled by its sender")
		}
		return muts, err
	})
}

func (n *Node) receiveAnswer(ans *pb.AddAnswer) error {
	var f *book.Friend
	fresh := false
	err := n.do(func(b *book.Book) ([]book.Mutation, error) {
		var muts []book.Mutation
		var err error
		f, muts, err = b.ReceiveAnswer(ans, n.clock())
		fresh = len(muts) > 0
		return muts, err
	})
	if err != nil {
		n.log.Info("answer dropped", "err", err)
		return err
	}
	if !fresh {
		n.publish("duplicate", fmt.Sprintf("%x", ans.RequestId), f.ID, "an answer received again")
		return nil
	}
	n.publish("answer", fmt.Sprintf("%x", ans.RequestId), f.ID, fmt.Sprintf("%s accepted: you are now friends", f.Name))
	return nil
}

// handleAdd serves add messages sent directly by other nodes.
func (n *Node) handleAdd(st network.Stream) {
	if err := st.Scope().SetService(ServiceName); err != nil {
		st.Reset()
		return
	}
	if err := st.Scope().ReserveMemory(protocols.MaxAddMessage, network.ReservationPriorityAlways); err != nil {
		st.Reset()
		return
	}
	defer st.Scope().ReleaseMemory(protocols.MaxAddMessage)
	st.SetDeadline(time.Now().Add(protocols.StreamDeadline))
	resp := &pb.AddResponse{Status: pb.Status_OK}
	frame, err := protocols.NewReader(st, protocols.MaxAddMessage).ReadFrame()
	if err == nil {
		var m *pb.AddMessage
		var reqs []*protocols.UnverifiedAddRequest
		m, reqs, err = protocols.DecodeAddMessage(frame, protocols.Limits{RequestsPerAdd: 1})
		if err == nil {
			switch {
			case m.GetRequest() != nil:
				u := reqs[0]
				if u.From != st.Conn().RemotePeer() {
					err = protocols.Errorf(pb.Status_UNAUTHORIZED, "the request is not signed by the sender")
				} else if rerr := n.receiveRequest(u, "direct"); rerr != nil {
					var ve *identity.VerifyError
					switch {
					case errors.As(rerr, &ve):
						// What fails verification is refused with its
						// reason, as a relay refuses it: the sender could
						// check it alone and learns nothing of the user.
						err = protocols.Errorf(pb.Status_REFUSED, "the request was refused: %v", ve)
						resp.Results = []*pb.AddResult{{RequestId: u.ID[:], To: []byte(u.To), Delivery: pb.Delivery_NOT_SENT,
							Reason: protocols.WireReason(ve.Reason), Detail: ve.Error()}}
					case !errors.Is(rerr, book.ErrDropped):
						err = rerr
					}
				}
				// Any other dropped request (blocked, already a friend,
				// not an invite of the user's) is answered OK: the sender
				// learns nothing.
			case m.GetAnswer() != nil:
				if aerr := n.receiveAnswer(m.GetAnswer()); aerr != nil && !errors.Is(aerr, book.ErrDropped) {
					err = aerr
				}
			case m.GetCancel() != nil:
				err = n.receiveCancel(m.GetCancel(), st.Conn().RemotePeer())
			case m.GetConsent() != nil:
				if cerr := n.receiveConsent(m.GetConsent(), st.Conn().RemotePeer()); cerr != nil && !errors.Is(cerr, book.ErrDropped) {
					err = cerr
				}
			default:
				err = protocols.Errorf(pb.Status_BAD_REQUEST, "a node does not fan out combined requests; send them to a relay")
			}
		}
	}
	if err != nil {
		resp.Status = protocols.StatusOf(err)
		resp.Text = err.Error()
	}
	protocols.WriteMsg(st, resp)
	st.Close()
}

// ---- retrying what is queued

func (n *Node) retryLoop() {
	defer n.wg.Done()
	t := time.NewTicker(n.opts.retry)
	defer t.Stop()
	for {
		select {
		case <-n.ctx.Done():
			return
		case <-t.C:
		case <-n.kickC:
		}
		n.rotateKeys()
		n.refreshFriends()
		n.flush(n.ctx)
	}
}

// refreshFriends asks, once per profile refresh period (WithProfileRefresh),
// for the newest signed profiles of all friends: a friend's new name,
// who may share them, their home relays and encryption key reach the
// node even when it sends them nothing.
func (n *Node) refreshFriends() {
	now := n.clock()
	if !n.lastRefresh.IsZero() && now.Sub(n.lastRefresh) < n.opts.refresh {
		return
	}
	if len(n.loggedInRelays()) == 0 {
		return
	}
	n.lastRefresh = now
	n.mu.Lock()
	var ids []peer.ID
	for _, f := range n.book.Friends() {
		ids = append(ids, f.ID)
	}
	n.mu.Unlock()
	n.resolveHomes(n.ctx, ids)
}

// rotateKeys publishes a new encryption key when the current one is
// book.EncKeyRotation old (and deletes retired ones past their retention):
// the profile is signed again and the node logs in again with it.
func (n *Node) rotateKeys() {
	n.mu.Lock()
	muts, resign, err := n.book.EnsureKeys(n.clock())
	if err == nil {
		err = n.commit(muts)
	}
	n.mu.Unlock()
	if err != nil {
		n.log.Warn("rotating keys", "err", err)
		return
	}
	if !resign {
		return
	}
	if err := n.republish(); err != nil {
		n.log.Warn("signing the profile", "err", err)
		return
	}
	n.log.Info("new encryption key published", "seq", n.book.Settings.Seq)
}

// flush sends whatever is queued: shares not yet answered by a relay,
// requests and acceptances not yet delivered, revocations not yet handed
// to a relay.
func (n *Node) flush(ctx context.Context) {
	relays := n.loggedInRelays()
	if len(relays) == 0 {
		return
	}
	n.mu.Lock()
	shares := n.book.UnansweredShares()
	reqs, answers := n.claimUnsent()
	revs := n.book.QueuedRevocations()
	n.mu.Unlock()
	for _, s := range shares {
		n.sendShare(ctx, s)
	}
	if len(reqs) > 0 {
		n.sendRequests(ctx, reqs)
	}
	for _, r := range answers {
		n.sendAnswer(ctx, r)
	}
	if len(revs) > 0 {
		n.sendRevocations(ctx, revs)
	}
	n.flushAsks(ctx)
	n.mu.Lock()
	packs := n.book.PacksToShare()
	n.mu.Unlock()
	for _, r := range packs {
		n.sharePack(ctx, r)
	}
}
