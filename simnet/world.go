package simnet

import (
	"context"
	"fmt"
	"hash/fnv"
	"log/slog"
	"math"
	"math/rand/v2"
	"net"
	"sync"
	"time"

	ds "github.com/ipfs/go-datastore"
	dssync "github.com/ipfs/go-datastore/sync"
	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/control"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/net/connmgr"
	"github.com/libp2p/go-libp2p/x/simlibp2p"
	sn "github.com/marcopolo/simnet"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/kithnet/kith/node"
	"github.com/kithnet/kith/rendezvous"
)

// world is one simulated network: relays and users on real libp2p hosts
// over marcopolo/simnet, in the virtual time of a synctest bubble.
type world struct {
	cfg     Config
	nw      *sn.Simnet
	log     *slog.Logger
	latency map[string]time.Duration // by IP
	latMu   sync.RWMutex
	relays  []*relayNode
	users   []*user
	gate    *gate
	keyRand *rand.ChaCha8 // deterministic keys
	hostMu  sync.Mutex    // simnet.NewEndpoint is not safe for concurrent use
}

type relayNode struct {
	idx  int
	key  crypto.PrivKey
	ds   ds.Batching
	host host.Host
	r    *rendezvous.Relay
	info peer.AddrInfo
	mu   sync.Mutex // guards r during a restart
	// traffic and refusals of earlier incarnations, added to the current one's
	past         rendezvous.Traffic
	pastRefusals map[string]int
	// base is the traffic when the workload started: the report counts
	// the workload's (the friend graph's construction runs many exchanges
	// at once, and what they send depends on the order they happen in).
	base     rendezvous.Traffic
	restarts int           // guarded by the sim's mu
	downAt   time.Time     // when it stopped, while it is down
	downFor  time.Duration // time spent down before
}

type user struct {
	idx       int
	name      string
	key       crypto.PrivKey
	id        peer.ID
	ds        ds.Batching
	home      int // the first home relay (user.homes lists them all)
	nhomes    int
	nrelays   int
	homeList  []int // set by a script's homes
	cluster   int
	adversary bool
	churny    bool

	mu     sync.Mutex
	starts int // times its node started: each start spreads its backoffs anew
	host   host.Host
	n      *node.Node
	online bool
	stop   func()
}

func newWorld(cfg Config) *world {
	w := &world{cfg: cfg, log: cfg.Log, latency: map[string]time.Duration{}, gate: newGate()}
	var seed [32]byte
	for i := range 8 {
		seed[i] = byte(cfg.Seed >> (8 * i))
	}
	w.keyRand = rand.NewChaCha8(seed)
	w.nw = &sn.Simnet{LatencyFunc: w.packetLatency}
	return w
}

// spread gives host idx its own access latency, from base to 1.5 base,
// to the nanosecond, chosen by the seed: no two hosts are exactly alike,
// as on a real network, and two packets from different places seldom
// arrive at the same virtual instant, where the order in which they are
// handled would be up to the scheduler and a run would not repeat.
func (w *world) spread(idx int, base time.Duration) time.Duration {
	h := fnv.New64a()
	fmt.Fprint(h, w.cfg.Seed, "|latency|", idx)
	return base + time.Duration(mix(h.Sum64())%uint64(base/2+1))
}

// packetLatency is the sum of both endpoints' access latencies.
func (w *world) packetLatency(p *sn.Packet) time.Duration {
	w.latMu.RLock()
	defer w.latMu.RUnlock()
	return w.latency[ipOf(p.From)] + w.latency[ipOf(p.To)]
}

func ipOf(a net.Addr) string {
	if u, ok := a.(*net.UDPAddr); ok {
		return u.IP.String()
	}
	return a.String()
}

func (w *world) newKey() crypto.PrivKey {
	w.hostMu.Lock()
	defer w.hostMu.Unlock()
	k, _, err := crypto.GenerateEd25519Key(w.keyRand)
	if err != nil {
		panic(err)
	}
	return k
}

func linkSettings(l Link) sn.NodeBiDiLinkSettings {
	if l.Bandwidth == 0 {
		l.Bandwidth = math.MaxInt64
	}
	return sn.NodeBiDiLinkSettings{
		Downlink: sn.LinkSettings{BitsPerSecond: int(l.Bandwidth)},
		Uplink:   sn.LinkSettings{BitsPerSecond: int(l.Bandwidth)},
	}
}

// newHost makes a real libp2p host at the simulated address of index idx.
func (w *world) newHost(idx int, key crypto.PrivKey, link Link, relay bool) (host.Host, error) {
	ip := sn.IntToPublicIPv4(idx)
	w.latMu.Lock()
	w.latency[ip.String()] = w.spread(idx, link.Latency)
	w.latMu.Unlock()
	opts := []libp2p.Option{
		libp2p.Identity(key),
		libp2p.ListenAddrStrings(fmt.Sprintf("/ip4/%s/udp/8000/quic-v1", ip)),
		simlibp2p.QUICSimnet(w.nw, linkSettings(link)),
		libp2p.DisableIdentifyAddressDiscovery(),
		libp2p.ResourceManager(&network.NullResourceManager{}),
		libp2p.DisableMetrics(),
	}
	if relay {
		cm, err := connmgr.NewConnManager(100000, 200000)
		if err != nil {
			return nil, err
		}
		opts = append(opts, libp2p.ConnectionManager(cm), libp2p.ConnectionGater(w.gate))
	}
	w.hostMu.Lock()
	defer w.hostMu.Unlock()
	return libp2p.New(opts...)
}

func (w *world) startRelays(ctx context.Context) error {
	for i := range w.cfg.Relays {
		rn := &relayNode{idx: i, key: w.newKey(), ds: dssync.MutexWrap(ds.NewMapDatastore())}
		w.relays = append(w.relays, rn)
	}
	for _, rn := range w.relays {
		if err := w.startRelay(ctx, rn); err != nil {
			return err
		}
	}
	return nil
}

func (w *world) startRelay(ctx context.Context, rn *relayNode) error {
	h, err := w.newHost(rn.idx, rn.key, w.cfg.RelayLink, true)
	if err != nil {
		return fmt.Errorf("relay %d host: %w", rn.idx, err)
	}
	cfg := rendezvous.DefaultConfig()
	cfg.MailboxItems = 400                                   // small, so that floods reach it
	cfg.StrangerItems = StrangerRoom                         // likewise for strangers' floods
	cfg.ShareRate = rendezvous.Rate{PerSecond: 5, Burst: 20} // people share a few times a day; floods hit it
	for _, other := range w.relays {
		if other == rn {
			continue
		}
		if w.cfg.Discover {
			// Every relay admits the others, but knows where only relay 0
			// is: the rest it finds through the DHT.
			cfg.Admit = append(cfg.Admit, peerOf(other.key).String())
			if other.idx != 0 {
				continue
			}
		}
		cfg.Peers = append(cfg.Peers, fmt.Sprintf("/ip4/%s/udp/8000/quic-v1/p2p/%s", sn.IntToPublicIPv4(other.idx), peerOf(other.key)))
	}
	if w.cfg.Discover {
		cfg.DHT.FindInterval = rendezvous.Duration(30 * time.Second)
	}
	r, err := rendezvous.New(ctx, h, rn.ds, rendezvous.WithConfig(cfg), rendezvous.WithLogger(w.log))
	if err != nil {
		h.Close()
		return fmt.Errorf("relay %d: %w", rn.idx, err)
	}
	rn.mu.Lock()
	rn.host, rn.r = h, r
	rn.info = peer.AddrInfo{ID: h.ID(), Addrs: h.Addrs()}
	if !rn.downAt.IsZero() {
		rn.downFor += time.Since(rn.downAt)
		rn.downAt = time.Time{}
	}
	rn.mu.Unlock()
	return nil
}

func (w *world) stopRelay(rn *relayNode) {
	rn.mu.Lock()
	defer rn.mu.Unlock()
	rn.past = addTraffic(rn.past, rn.r.Traffic())
	if rn.pastRefusals == nil {
		rn.pastRefusals = map[string]int{}
	}
	for k, v := range gatherRefusals(rn.r) {
		rn.pastRefusals[k] += v
	}
	rn.r.Close()
	rn.host.Close()
	rn.downAt = time.Now()
}

func (rn *relayNode) traffic() rendezvous.Traffic {
	rn.mu.Lock()
	defer rn.mu.Unlock()
	return addTraffic(rn.past, rn.r.Traffic())
}

func subTraffic(a, b rendezvous.Traffic) rendezvous.Traffic {
	return rendezvous.Traffic{
		MessagesIn: a.MessagesIn - b.MessagesIn, BytesIn: a.BytesIn - b.BytesIn,
		MessagesOut: a.MessagesOut - b.MessagesOut, BytesOut: a.BytesOut - b.BytesOut,
		AckFrames: a.AckFrames - b.AckFrames, AckBytes: a.AckBytes - b.AckBytes, Acked: a.Acked - b.Acked,
	}
}

func addTraffic(a, b rendezvous.Traffic) rendezvous.Traffic {
	return rendezvous.Traffic{
		MessagesIn: a.MessagesIn + b.MessagesIn, BytesIn: a.BytesIn + b.BytesIn,
		MessagesOut: a.MessagesOut + b.MessagesOut, BytesOut: a.BytesOut + b.BytesOut,
		AckFrames: a.AckFrames + b.AckFrames, AckBytes: a.AckBytes + b.AckBytes, Acked: a.Acked + b.Acked,
	}
}

// addrInfo is where the relay listens now (a restart sets it again).
func (rn *relayNode) addrInfo() peer.AddrInfo {
	rn.mu.Lock()
	defer rn.mu.Unlock()
	return rn.info
}

func (rn *relayNode) mailbox() int {
	rn.mu.Lock()
	defer rn.mu.Unlock()
	return rn.r.MailboxItems()
}

func peerOf(k crypto.PrivKey) peer.ID {
	id, _ := peer.IDFromPrivateKey(k)
	return id
}

func (w *world) newUsers() {
	for i := range w.cfg.Nodes {
		k := w.newKey()
		u := &user{idx: w.cfg.Relays + i, name: fmt.Sprintf("user%04d", i), key: k, id: peerOf(k),
			ds: dssync.MutexWrap(ds.NewMapDatastore()), home: i % w.cfg.Relays, nhomes: w.cfg.Homes, nrelays: w.cfg.Relays, cluster: i / w.cfg.ClusterSize}
		w.users = append(w.users, u)
	}
}

// up starts (or restarts) a user's node; onEvent receives its events.
func (w *world) up(ctx context.Context, u *user, onEvent func(*user, node.Event)) error {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.online {
		return nil
	}
	h, err := w.newHost(u.idx, u.key, w.cfg.NodeLink, false)
	if err != nil {
		return fmt.Errorf("%s host: %w", u.name, err)
	}
	var homes []peer.AddrInfo
	for _, i := range u.homes() {
		homes = append(homes, w.relays[i].addrInfo())
	}
	n, err := node.New(ctx, h, u.ds, u.key, node.WithName(u.name), node.WithRendezvous(homes...),
		node.WithLogger(w.log), node.WithDirectTimeout(3*time.Second),
		node.WithJitterSeed(w.cfg.Seed^uint64(u.idx)<<20^uint64(u.starts)))
	u.starts++
	if err != nil {
		h.Close()
		return fmt.Errorf("%s: %w", u.name, err)
	}
	ch, stop := n.Subscribe()
	done := make(chan struct{})
	go func() {
		defer close(done)
		for e := range ch {
			onEvent(u, e)
		}
	}()
	u.host, u.n, u.online = h, n, true
	u.stop = func() { stop(); <-done }
	return nil
}

// down stops a user's node; its datastore stays.
func (w *world) down(u *user) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if !u.online {
		return
	}
	u.online = false
	u.n.Close()
	u.host.Close()
	u.stop()
}

// homes are u's home relays: the list a script set, else u.home first,
// then the next ones round.
func (u *user) homes() []int {
	if u.homeList != nil {
		return u.homeList
	}
	out := []int{u.home}
	for k := 1; k < u.nhomes; k++ {
		out = append(out, (u.home+k)%u.nrelays)
	}
	return out
}

// node returns u's node if it is online.
func (u *user) node() *node.Node {
	u.mu.Lock()
	defer u.mu.Unlock()
	if !u.online {
		return nil
	}
	return u.n
}

func (w *world) close() {
	for _, u := range w.users {
		w.down(u)
	}
	for _, rn := range w.relays {
		if rn.r != nil {
			w.stopRelay(rn)
		}
	}
	w.nw.Close()
}

// gate is a connection gater on relays that can cut peers off (a network
// partition) and let them back in.
type gate struct {
	mu  sync.RWMutex
	cut map[peer.ID]bool
}

func newGate() *gate { return &gate{cut: map[peer.ID]bool{}} }

func (g *gate) set(ids []peer.ID, cut bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, id := range ids {
		if cut {
			g.cut[id] = true
		} else {
			delete(g.cut, id)
		}
	}
}

func (g *gate) blocked(p peer.ID) bool {
	g.mu.RLock()
	defer g.mu.RUnlock()
	return g.cut[p]
}

func (g *gate) InterceptPeerDial(p peer.ID) bool                 { return !g.blocked(p) }
func (g *gate) InterceptAddrDial(p peer.ID, _ ma.Multiaddr) bool { return !g.blocked(p) }
func (g *gate) InterceptAccept(network.ConnMultiaddrs) bool      { return true }
func (g *gate) InterceptSecured(_ network.Direction, p peer.ID, _ network.ConnMultiaddrs) bool {
	return !g.blocked(p)
}
func (g *gate) InterceptUpgraded(network.Conn) (bool, control.DisconnectReason) { return true, 0 }
