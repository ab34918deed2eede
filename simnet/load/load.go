package load

import (
	"context"
	"errors"
	"fmt"
	"io"
	"runtime"
	"runtime/pprof"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/security/noise"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
	ma "github.com/multiformats/go-multiaddr"
	"golang.org/x/sync/errgroup"
	"golang.org/x/time/rate"

	"github.com/kithnet/kith/identity"
	"github.com/kithnet/kith/node"
	"github.com/kithnet/kith/protocols"
	"github.com/kithnet/kith/protocols/client"
	"github.com/kithnet/kith/protocols/pb"
)

// Config says what load to put on which relay.
type Config struct {
	Relay    string // the relay's multiaddr, ending in /p2p/<id>
	RelayPID int    // the relay's process, for CPU time and memory (0: not measured)
	Mode     string // online, offline or conns

	// online
	Pairs    int           // sharer/target pairs, both online
	Window   int           // shares in flight per sharer (online and offline)
	Rate     float64       // shares per second offered in total; 0 = as fast as possible
	Duration time.Duration // measured time
	Warmup   time.Duration // unmeasured time before it
	Items    int           // shared friends per share; default 5
	// Presealed is how many shares are sealed before the clock starts, in
	// all (0: enough for Rate over warm-up and run, or presealRate per
	// second when unpaced, at most maxAutoPresealed). Sealing is the sender's work, not the
	// relay's: done during the run it takes a core's worth of the CPU the
	// relay is measured on. Shares beyond these are sealed as they are
	// sent (Report.SealedInRun).
	Presealed int

	// offline
	M int // shares stored for one offline target

	// conns
	Conns int           // users that log in, 32 at a time
	Hold  time.Duration // how long they stay

	Progress func(string) // optional

	// CPUProfile, if set, receives a pprof CPU profile of this generator
	// over the measured phase (online: after the warm-up; offline: storing
	// and draining; conns: the logins), to tell its own cost from the
	// relay's.
	CPUProfile io.Writer
}

// Report is what a run measured. Fields that a mode does not measure are
// zero.
type Report struct {
	Mode string `json:"mode"`

	SharesPerSecond      float64 `json:"shares_per_second"`
	P50ms                float64 `json:"p50_ms"`
	P99ms                float64 `json:"p99_ms"`
	P999ms               float64 `json:"p999_ms"`
	Sent                 int     `json:"sent"`
	Delivered            int     `json:"delivered"`
	Lost                 int     `json:"lost"`
	Duplicates           int     `json:"duplicates"`
	RelayCPUusPerShare   float64 `json:"relay_cpu_us_per_share"`
	RelayCPUPercent      float64 `json:"relay_cpu_percent"`
	StoreSharesPerSecond float64 `json:"store_shares_per_second"`
	DrainMs              float64 `json:"drain_ms"`
	FirstItemMs          float64 `json:"first_item_ms"`
	Redelivered          int     `json:"redelivered"`
	RefusedAtQuota       int     `json:"refused_at_quota"`

	Live            int     `json:"live"`
	LoggedIn        int     `json:"logged_in"`
	FailedLogins    int     `json:"failed_logins"`
	LoginsPerSecond float64 `json:"logins_per_second"`
	LoginP50ms      float64 `json:"login_p50_ms"`
	LoginP99ms      float64 `json:"login_p99_ms"`
	RSSKiBPerConn   float64 `json:"rss_kib_per_conn"`
	RelayRSSKiB     int64   `json:"relay_rss_kib"`

	Presealed   int     `json:"presealed"`
	SealedInRun int     `json:"sealed_in_run"`
	WallSeconds float64 `json:"wall_seconds"`
}

// presealRate is the throughput an unpaced online run is presealed for;
// maxAutoPresealed bounds what is sealed in advance unasked (about 2 KB
// each: 400 MB), so that a long run does not hold it all in memory.
const (
	presealRate      = 10000
	maxAutoPresealed = 200000
)

// presealed returns how many shares the online run seals in advance.
func (c *Config) presealed() int {
	if c.Presealed > 0 {
		return c.Presealed
	}
	run := (c.Warmup + c.Duration).Seconds()
	n := presealRate * run
	if c.Rate > 0 {
		n = c.Rate*run*1.1 + float64(c.Pairs*c.Window)
	}
	return int(min(n, maxAutoPresealed))
}

func (c *Config) defaults() error {
	if c.Items == 0 {
		c.Items = 5
	}
	if c.Window == 0 {
		c.Window = 16
	}
	if c.Duration == 0 {
		c.Duration = 10 * time.Second
	}
	switch c.Mode {
	case "online":
		if c.Pairs <= 0 {
			return fmt.Errorf("online needs --pairs")
		}
	case "offline":
		if c.M <= 0 {
			return fmt.Errorf("offline needs --m")
		}
	case "conns":
		if c.Conns <= 0 {
			return fmt.Errorf("conns needs --conns")
		}
	default:
		return fmt.Errorf("unknown mode %q (online, offline, conns)", c.Mode)
	}
	return nil
}

// profile starts the generator's CPU profile, if one was asked for, and
// returns what stops it.
func (c *Config) profile() (stop func()) {
	if c.CPUProfile == nil {
		return func() {}
	}
	if err := pprof.StartCPUProfile(c.CPUProfile); err != nil {
		c.say("no CPU profile: %v", err)
		return func() {}
	}
	return pprof.StopCPUProfile
}

func (c *Config) say(format string, args ...any) {
	if c.Progress != nil {
		c.Progress(fmt.Sprintf(format, args...))
	}
}

// Run puts the load on the relay and reports.
func Run(ctx context.Context, c Config) (*Report, error) {
	if err := c.defaults(); err != nil {
		return nil, err
	}
	a, err := ma.NewMultiaddr(c.Relay)
	if err != nil {
		return nil, fmt.Errorf("--relay: %w", err)
	}
	relay, err := peer.AddrInfoFromP2pAddr(a)
	if err != nil {
		return nil, fmt.Errorf("--relay must end in /p2p/<id>: %w", err)
	}
	l := &loader{c: c, relay: *relay}
	start := time.Now()
	var rep *Report
	switch c.Mode {
	case "online":
		rep, err = l.online(ctx)
	case "offline":
		rep, err = l.offline(ctx)
	case "conns":
		rep, err = l.conns(ctx)
	}
	if rep != nil {
		rep.Mode = c.Mode
		rep.WallSeconds = time.Since(start).Seconds()
		if c.RelayPID > 0 {
			rep.RelayRSSKiB, _ = rssKiB(c.RelayPID)
		}
	}
	return rep, err
}

type loader struct {
	c     Config
	relay peer.AddrInfo
}

// user is one simulated person: a key, a host with its own connection to
// the relay, and a signed profile.
type user struct {
	key     crypto.PrivKey
	id      peer.ID
	h       host.Host
	profile []byte
}

func (l *loader) newUser() (*user, error) {
	k, err := identity.GenerateKey()
	if err != nil {
		return nil, err
	}
	u, err := l.hostFor(k)
	if err != nil {
		return nil, err
	}
	u.profile, err = identity.NewProfile(k, identity.ProfileInfo{Name: "load-" + u.id.String()[len(u.id.String())-6:]}, time.Now())
	return u, err
}

// hostFor makes a lean client host: TCP, Noise, a node's Yamux, no
// listening, no relay transport, no resource limits of its own.
func (l *loader) hostFor(k crypto.PrivKey) (*user, error) {
	h, err := libp2p.New(libp2p.Identity(k), libp2p.NoListenAddrs, libp2p.DisableRelay(),
		libp2p.Transport(tcp.NewTCPTransport), libp2p.Security(noise.ID, noise.New), node.Muxer(),
		libp2p.ResourceManager(&network.NullResourceManager{}), libp2p.DisableMetrics(), libp2p.DisableIdentifyAddressDiscovery())
	if err != nil {
		return nil, err
	}
	id, _ := peer.IDFromPrivateKey(k)
	h.Peerstore().AddAddrs(l.relay.ID, l.relay.Addrs, time.Hour)
	return &user{key: k, id: id, h: h}, nil
}

// friendship makes an attestation between a and b, both keys in hand.
func friendship(a crypto.PrivKey, b crypto.PrivKey) ([]byte, error) {
	bid, _ := peer.IDFromPrivateKey(b)
	offer, err := identity.MakeOffer(a, bid, time.Now(), 0)
	if err != nil {
		return nil, err
	}
	att, err := identity.NewVerifier().Countersign(b, offer, time.Now())
	if err != nil {
		return nil, err
	}
	return att.Raw, nil
}

// sharer is a user with a target and items, all befriended in advance.
type sharer struct {
	*user
	target *user
	spec   protocols.ShareSpec
	pre    []preShare // sealed before the clock, sent first
	taken  atomic.Int64
}

// preShare is a share sealed in advance: its id and its bytes.
type preShare struct {
	id  identity.ShareID
	raw []byte
}

// preseal seals n shares for later.
func (s *sharer) preseal(n int) error {
	s.pre = make([]preShare, n)
	for i := range s.pre {
		u, err := s.build()
		if err != nil {
			return err
		}
		s.pre[i] = preShare{id: u.ID, raw: u.Raw}
	}
	return nil
}

// next returns a share to send: a presealed one while they last, else one
// sealed now (fresh).
func (s *sharer) next() (p preShare, fresh bool, err error) {
	if i := int(s.taken.Add(1) - 1); i < len(s.pre) {
		p, s.pre[i] = s.pre[i], preShare{} // sent once, then let go
		return p, false, nil
	}
	u, err := s.build()
	if err != nil {
		return preShare{}, true, err
	}
	return preShare{id: u.ID, raw: u.Raw}, true, nil
}

func (l *loader) newPair() (*sharer, error) {
	s, err := l.newUser()
	if err != nil {
		return nil, err
	}
	t, err := l.newUser()
	if err != nil {
		return nil, err
	}
	tAtt, err := friendship(s.key, t.key)
	if err != nil {
		return nil, err
	}
	// The words and names are sealed to the target, as a node seals them:
	// the relay carries what it carries for real users.
	enc, err := identity.GenerateEncKey(time.Now())
	if err != nil {
		return nil, err
	}
	spec := protocols.ShareSpec{SharerName: "sharer", Targets: []protocols.ShareTarget{{Peer: t.id, Attestation: tAtt, Key: enc.Public()}}}
	for i := range l.c.Items {
		k, _ := identity.GenerateKey()
		id, _ := peer.IDFromPrivateKey(k)
		att, err := friendship(s.key, k)
		if err != nil {
			return nil, err
		}
		spec.Items = append(spec.Items, protocols.ShareItem{Peer: id, Name: fmt.Sprintf("friend %d", i), Attestation: att})
	}
	return &sharer{user: s, target: t, spec: spec}, nil
}

func (s *sharer) build() (*protocols.UnverifiedShare, error) {
	spec := s.spec
	spec.CreatedAt = time.Now()
	spec.Items = append([]protocols.ShareItem(nil), spec.Items...)
	return protocols.BuildShare(s.key, spec)
}

// receiver reads a logged-in user's inbox, acknowledges each item, and
// records when each id first arrived and how many times.
type receiver struct {
	mu       sync.Mutex
	first    map[string]time.Time
	count    map[string]int
	total    atomic.Int64
	earliest atomic.Int64 // UnixNano of the earliest arrival
	last     atomic.Int64 // UnixNano of the latest arrival
	acked    atomic.Int64 // items acknowledged (the acknowledgement written)
	ackedAt  atomic.Int64 // UnixNano of the latest acknowledgement written
}

func newReceiver() *receiver {
	return &receiver{first: map[string]time.Time{}, count: map[string]int{}}
}

func (r *receiver) run(in *client.Inbox) error {
	var acks []uint64
	for {
		it, err := in.Next()
		if err != nil {
			return err
		}
		now := time.Now()
		id := string(it.Id)
		r.mu.Lock()
		if _, ok := r.first[id]; !ok {
			r.first[id] = now
		}
		r.count[id]++
		r.mu.Unlock()
		r.total.Add(1)
		r.earliest.CompareAndSwap(0, now.UnixNano())
		r.last.Store(now.UnixNano())
		acks = append(acks, it.Seq)
		if !in.More() || len(acks) >= 256 {
			if err := in.Ack(acks...); err != nil {
				return err
			}
			r.ackedAt.Store(time.Now().UnixNano())
			r.acked.Add(int64(len(acks)))
			acks = acks[:0]
		}
	}
}

func (l *loader) login(ctx context.Context, u *user, window uint32) (*client.Inbox, error) {
	return client.Login(ctx, u.h, l.relay.ID, u.profile, nil, window)
}

func quantile(ds []time.Duration, q float64) float64 {
	if len(ds) == 0 {
		return 0
	}
	i := int(q * float64(len(ds)-1))
	return float64(ds[i].Microseconds()) / 1000
}

// ---- online

func (l *loader) online(ctx context.Context) (*Report, error) {
	c := l.c
	c.say("preparing %d pairs (keys, friendships, logins)", c.Pairs)
	var finished atomic.Bool // set before the inboxes are closed on purpose
	pairs := make([]*sharer, c.Pairs)
	recv := make([]*receiver, c.Pairs)
	for i := range pairs {
		p, err := l.newPair()
		if err != nil {
			return nil, err
		}
		defer p.h.Close()
		defer p.target.h.Close()
		in, err := l.login(ctx, p.target, 1024)
		if err != nil {
			return nil, fmt.Errorf("target login: %w", err)
		}
		defer in.Close()
		pairs[i], recv[i] = p, newReceiver()
		go func() {
			if err := recv[i].run(in); !finished.Load() {
				c.say("target %d's inbox ended early: %v", i, err)
			}
		}()
		if err := p.h.Connect(ctx, l.relay); err != nil {
			return nil, err
		}
	}
	// Sealed before the clock, on every core.
	n := c.presealed()
	c.say("sealing %d shares before the clock", n)
	var seal errgroup.Group
	seal.SetLimit(runtime.GOMAXPROCS(0))
	for i, p := range pairs {
		per := n / len(pairs)
		if i < n%len(pairs) {
			per++
		}
		seal.Go(func() error { return p.preseal(per) })
	}
	if err := seal.Wait(); err != nil {
		return nil, fmt.Errorf("sealing shares: %w", err)
	}
	var sealedInRun atomic.Int64
	var limiter *rate.Limiter
	if c.Rate > 0 {
		limiter = rate.NewLimiter(rate.Limit(c.Rate), max(1, int(c.Rate/100)))
	}
	type sent struct {
		at   time.Time
		pair int
	}
	var mu sync.Mutex
	sends := map[string]sent{}
	var refused, failed atomic.Int64
	var measuring atomic.Bool
	stopAt := time.Now().Add(c.Warmup + c.Duration)
	runCtx, cancel := context.WithDeadline(ctx, stopAt)
	defer cancel()
	var wg sync.WaitGroup
	c.say("warming up for %s, then measuring for %s", c.Warmup, c.Duration)
	for i, p := range pairs {
		for range c.Window {
			wg.Add(1)
			go func() {
				defer wg.Done()
				sh := client.NewSharer(p.h, l.relay.ID)
				defer sh.Close()
				for runCtx.Err() == nil {
					if limiter != nil && limiter.Wait(runCtx) != nil {
						return
					}
					s, fresh, err := p.next()
					if fresh {
						sealedInRun.Add(1)
					}
					if err != nil {
						failed.Add(1)
						continue
					}
					at := time.Now()
					resp, err := sh.Share(runCtx, s.raw)
					if err != nil || resp.Status != pb.Status_OK {
						if runCtx.Err() == nil {
							refused.Add(1)
						}
						continue
					}
					if measuring.Load() {
						mu.Lock()
						sends[string(s.id[:])] = sent{at: at, pair: i}
						mu.Unlock()
					}
				}
			}()
		}
	}
	time.Sleep(c.Warmup)
	cpu0, _ := l.relayCPU()
	measuring.Store(true)
	stopProfile := c.profile()
	t0 := time.Now()
	time.Sleep(time.Until(stopAt))
	measured := time.Since(t0)
	stopProfile()
	cpu1, _ := l.relayCPU()
	wg.Wait()
	// Stragglers: whatever the relay stored rather than delivered at once
	// is still being pushed; wait until the targets have been quiet for
	// two seconds (at most a minute) before calling anything lost.
	quietSince := time.Now()
	var seen int64
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline) && time.Since(quietSince) < 2*time.Second; {
		var total int64
		for _, r := range recv {
			total += r.total.Load()
		}
		if total != seen {
			seen, quietSince = total, time.Now()
		}
		time.Sleep(50 * time.Millisecond)
	}
	finished.Store(true)
	rep := &Report{}
	var lat []time.Duration
	for id, s := range sends {
		r := recv[s.pair]
		r.mu.Lock()
		at, ok := r.first[id]
		n := r.count[id]
		r.mu.Unlock()
		rep.Sent++
		if !ok {
			rep.Lost++
			continue
		}
		rep.Delivered++
		if n > 1 {
			rep.Duplicates += n - 1
		}
		lat = append(lat, at.Sub(s.at))
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	rep.P50ms, rep.P99ms, rep.P999ms = quantile(lat, .5), quantile(lat, .99), quantile(lat, .999)
	rep.SharesPerSecond = float64(rep.Delivered) / measured.Seconds()
	rep.Presealed, rep.SealedInRun = n, int(sealedInRun.Load())
	if c.RelayPID > 0 && rep.Delivered > 0 {
		rep.RelayCPUusPerShare = float64((cpu1 - cpu0).Microseconds()) / float64(rep.Delivered)
		rep.RelayCPUPercent = 100 * (cpu1 - cpu0).Seconds() / measured.Seconds()
	}
	if n := refused.Load(); n > 0 {
		c.say("%d shares were refused or failed (is the relay's share_rate high enough for a load test?)", n)
	}
	return rep, nil
}

func (l *loader) relayCPU() (time.Duration, error) {
	if l.c.RelayPID <= 0 {
		return 0, errors.New("no relay pid")
	}
	return cpuTime(l.c.RelayPID)
}

// ---- offline

func (l *loader) offline(ctx context.Context) (*Report, error) {
	c := l.c
	p, err := l.newPair()
	if err != nil {
		return nil, err
	}
	defer p.h.Close()
	defer p.target.h.Close()
	if err := p.h.Connect(ctx, l.relay); err != nil {
		return nil, err
	}
	c.say("storing %d shares for an offline target, %d in flight", c.M, c.Window)
	rep := &Report{}
	var stored, full atomic.Int64
	var ids sync.Map
	jobs := make(chan struct{})
	var wg sync.WaitGroup
	stopProfile := c.profile()
	defer stopProfile()
	t0 := time.Now()
	for range c.Window {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sh := client.NewSharer(p.h, l.relay.ID)
			defer sh.Close()
			for range jobs {
				s, err := p.build()
				if err != nil {
					continue
				}
				resp, err := sh.Share(ctx, s.Raw)
				switch {
				case err == nil && resp.Status == pb.Status_OK:
					stored.Add(1)
					ids.Store(string(s.ID[:]), true)
				case resp != nil && (resp.Status == pb.Status_QUOTA_EXCEEDED || hasReason(resp, pb.Reason_MAILBOX_FULL)):
					full.Add(1)
				}
			}
		}()
	}
	for range c.M {
		jobs <- struct{}{}
	}
	close(jobs)
	wg.Wait()
	storeTime := time.Since(t0)
	rep.Sent = int(stored.Load())
	rep.RefusedAtQuota = int(full.Load())
	rep.StoreSharesPerSecond = float64(rep.Sent) / storeTime.Seconds()
	c.say("stored %d in %s (%d refused at the quota); the target logs in", rep.Sent, storeTime.Round(time.Millisecond), rep.RefusedAtQuota)

	// The target logs in and drains its mailbox.
	r := newReceiver()
	t1 := time.Now()
	in, err := l.login(ctx, p.target, 1024)
	if err != nil {
		return nil, err
	}
	go r.run(in)
	deadline := time.Now().Add(60 * time.Second)
	for int(r.acked.Load()) < rep.Sent && time.Now().Before(deadline) {
		time.Sleep(200 * time.Microsecond)
	}
	// Drained: the last item received and its acknowledgement written.
	rep.DrainMs = float64(time.Unix(0, r.ackedAt.Load()).Sub(t1).Microseconds()) / 1000
	rep.FirstItemMs = float64(time.Unix(0, r.earliest.Load()).Sub(t1).Microseconds()) / 1000
	time.Sleep(500 * time.Millisecond) // let the last acknowledgements be written
	in.Close()
	ids.Range(func(k, _ any) bool {
		r.mu.Lock()
		n := r.count[k.(string)]
		r.mu.Unlock()
		switch {
		case n == 0:
			rep.Lost++
		case n > 1:
			rep.Duplicates += n - 1
		}
		if n > 0 {
			rep.Delivered++
		}
		return true
	})
	// A second login must find nothing: everything was acknowledged.
	time.Sleep(200 * time.Millisecond)
	in2, err := l.login(ctx, p.target, 1024)
	if err != nil {
		return nil, err
	}
	rep.Redelivered = int(in2.Result.Waiting)
	in2.Close()
	return rep, nil
}

func hasReason(resp *pb.ShareResponse, r pb.Reason) bool {
	for _, f := range resp.Failures {
		if f.Reason == r {
			return true
		}
	}
	return false
}

// ---- conns

func (l *loader) conns(ctx context.Context) (*Report, error) {
	c := l.c
	c.say("creating %d users", c.Conns)
	users := make([]*user, c.Conns)
	for i := range users {
		u, err := l.newUser()
		if err != nil {
			return nil, err
		}
		defer u.h.Close()
		users[i] = u
	}
	var rss0 int64
	if c.RelayPID > 0 {
		rss0, _ = rssKiB(c.RelayPID)
	}
	c.say("logging in, 32 at a time")
	lat := make([]time.Duration, c.Conns)
	ok := make([]bool, c.Conns)
	inboxes := make([]*client.Inbox, c.Conns)
	sem := make(chan struct{}, 32)
	var wg sync.WaitGroup
	var failures atomic.Int64
	stopProfile := c.profile()
	t0 := time.Now()
	for i, u := range users {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			start := time.Now()
			lctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			defer cancel()
			in, err := l.login(lctx, u, 0)
			lat[i] = time.Since(start)
			if err != nil {
				if failures.Add(1) <= 3 {
					c.say("a login failed: %v", err)
				}
				return
			}
			inboxes[i] = in
			ok[i] = l.ask(ctx, u) == nil
		}()
	}
	wg.Wait()
	loginTime := time.Since(t0)
	stopProfile()
	rep := &Report{}
	var good []time.Duration
	for i := range users {
		if inboxes[i] != nil {
			good = append(good, lat[i])
		}
	}
	sort.Slice(good, func(i, j int) bool { return good[i] < good[j] })
	rep.LoginsPerSecond = float64(len(good)) / loginTime.Seconds()
	rep.LoggedIn, rep.FailedLogins = len(good), int(failures.Load())
	rep.LoginP50ms, rep.LoginP99ms = quantile(good, .5), quantile(good, .99)
	if c.RelayPID > 0 {
		rss1, _ := rssKiB(c.RelayPID)
		if len(good) > 0 {
			rep.RSSKiBPerConn = float64(rss1-rss0) / float64(len(good))
		}
	}
	c.say("%d logged in (%.0f/s); holding for %s", len(good), rep.LoginsPerSecond, c.Hold)
	time.Sleep(c.Hold)
	// Still live: the same connection is up and answers a request.
	live := make([]bool, c.Conns)
	for i, u := range users {
		if inboxes[i] == nil || !ok[i] {
			continue
		}
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			if u.h.Network().Connectedness(l.relay.ID) == network.Connected && l.ask(ctx, u) == nil {
				live[i] = true
			}
		}()
	}
	wg.Wait()
	for i := range live {
		if live[i] {
			rep.Live++
		}
		if inboxes[i] != nil {
			inboxes[i].Close()
		}
	}
	return rep, nil
}

// ask does one request: a presence query about oneself.
func (l *loader) ask(ctx context.Context, u *user) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	_, err := client.Presence(ctx, u.h, l.relay.ID, &pb.PresenceQuery{Asks: []*pb.PresenceAsk{{Peer: []byte(u.id)}}})
	return err
}
