package simnet

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"runtime"
	"runtime/pprof"
	"slices"
	"testing"
	"testing/synctest"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/kithnet/kith/rendezvous"
)

// Run builds the network cfg describes, plays its workload, and reports.
// It must run inside a testing/synctest bubble (see RunTest and Main):
// every host, relay and node is real, the network is simulated, and time
// is virtual.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	cfg.defaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	w := newWorld(cfg)
	w.nw.Start()
	s := newSim(w)
	s.ctx = ctx
	s.start = time.Now()
	defer func() {
		s.wg.Wait()
		w.close()
	}()

	s.progress("network", 0)
	if err := w.startRelays(ctx); err != nil {
		return nil, err
	}
	w.newUsers()
	for i, u := range w.users {
		s.byID[u.id] = u
		u.adversary = i >= cfg.Nodes-cfg.Adversaries
		u.churny = !u.adversary && s.chance("churny", i) < cfg.Churn
	}
	// Join in waves: a thousand handshakes at one instant would overflow
	// the relay's link, as they would a real one.
	for i, u := range w.users {
		if err := w.up(ctx, u, s.onEvent); err != nil {
			return nil, err
		}
		if i%25 == 24 {
			time.Sleep(100 * time.Millisecond)
			s.progress("network", float64(i)/float64(len(w.users)))
		}
	}
	for _, u := range w.users {
		if err := waitUntil(2*time.Minute, u.node().LoggedIn); err != nil {
			return nil, fmt.Errorf("%s never logged in", u.name)
		}
	}
	if err := s.befriend(); err != nil {
		return nil, err
	}
	s.groups()
	s.answering.Store(true)
	// The workload starts on a whole 10 s of virtual time: the phases
	// before it end a few milliseconds apart from run to run (requests and
	// answers that arrive at the same virtual instant are handled in
	// either order), and the workload's clock must not inherit that.
	time.Sleep(time.Until(s.start.Add(time.Since(s.start).Truncate(10 * time.Second)).Add(10 * time.Second)))

	// The workload.
	stopSampling := make(chan struct{})
	sampled := make(chan struct{})
	go func() { s.sample(stopSampling); close(sampled) }()
	workStart := time.Now()
	s.workStart = workStart
	for _, rn := range w.relays {
		rn.base = rn.traffic()
	}
	workEnd := workStart.Add(cfg.Workload)
	for _, u := range w.users {
		if u.churny {
			s.goDo(func() { s.churn(u, workEnd) })
		}
		if u.adversary {
			s.goDo(func() { s.adversary(u, workEnd) })
		}
	}
	for _, u := range w.users {
		if u.adversary {
			continue
		}
		if s.chance("unfriends", u.idx) < cfg.Unfriend {
			s.goDo(func() { s.unfriend(u, workStart) })
		}
		if !u.churny && s.chance("moves", u.idx) < cfg.Move { // churn would restart them with the old home
			s.goDo(func() { s.move(u, workStart) })
		}
	}
	if cfg.RelayDown > 0 {
		s.goDo(func() { time.Sleep(cfg.Workload / 2); s.relayDown() })
	}
	followed := make(chan struct{})
	go func() { s.followRevocations(stopSampling); close(followed) }()
	if cfg.RelayRestart {
		s.goDo(func() { time.Sleep(cfg.Workload / 2); s.restartRelay() })
	}
	if cfg.Partition {
		s.goDo(func() { time.Sleep(cfg.Workload / 3); s.partition() })
	}
	if cfg.Shares > 0 {
		gap := cfg.Workload / time.Duration(cfg.Shares)
		jitter := rand.New(rand.NewPCG(cfg.Seed, 0x736861726573))
		for i := range cfg.Shares {
			// Each share at its own instant, somewhere in its slot.
			at := workStart.Add(time.Duration(i)*gap + between(jitter, 0, gap))
			s.goDo(func() { time.Sleep(time.Until(at)); s.share(i) })
			time.Sleep(gap)
			if i%(cfg.Shares/20+1) == 0 {
				s.progress("workload", float64(i)/float64(cfg.Shares))
			}
		}
	}
	time.Sleep(time.Until(workEnd.Add(offBeat)))

	if cfg.HeapProfile != nil {
		runtime.GC()
		if err := pprof.WriteHeapProfile(cfg.HeapProfile); err != nil {
			cfg.Log.Warn("writing the heap profile", "err", err)
		}
	}

	// Drain: everyone comes back online; wait until every valid item has
	// arrived (or the drain time is up).
	drainEnd := time.Now().Add(cfg.Drain)
	for _, u := range w.users {
		w.up(ctx, u, s.onEvent) // no-op for those online
	}
	for {
		sh, rq, an := s.outstanding()
		s.mu.Lock()
		total := len(s.shares) + len(s.requests) + len(s.answers)
		s.mu.Unlock()
		s.progress("drain", 1-float64(sh+rq+an)/float64(1+total))
		if sh+rq+an == 0 && s.active.Load() == 0 && s.revocationsOpen() == 0 {
			// Nothing in flight, nothing missing: done. (Picks and answers
			// triggered by late deliveries are in flight while any of the
			// simulation's goroutines runs.)
			break
		}
		if time.Now().After(drainEnd) {
			break
		}
		time.Sleep(5 * time.Second)
	}
	close(stopSampling)
	<-sampled
	<-followed
	return s.report(), nil
}

func waitUntil(d time.Duration, cond func() bool) error {
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			return fmt.Errorf("timed out")
		}
		time.Sleep(50 * time.Millisecond)
	}
	return nil
}

func (s *sim) report() *Report {
	s.outstanding()
	s.mu.Lock()
	defer s.mu.Unlock()
	r := &Report{
		Nodes: s.cfg.Nodes, Relays: s.cfg.Relays, Seed: s.cfg.Seed, Churn: s.cfg.Churn, Adversaries: s.cfg.Adversaries,
		SharesAttempted: s.attempted, Redeliveries: s.redeliveries, ForgedAccepted: s.forgedOK,
		Attacks: s.attacks, Declined: s.declined, ChurnEvents: s.churnEvents, RelayRestarts: s.restarts,
		PartitionHeals: s.heals, MailboxDepth: s.depth, Refusals: map[string]int{}, Strangers: s.strangers,
		VirtualSeconds: time.Since(s.start).Seconds(), Moves: s.moves, Revocations: s.revocationReport(),
	}
	// Latencies: from when an item was sent to its first arrival, for the
	// items whose arrival was observed as an event.
	var shareLat, requestLat, answerLat []time.Duration
	for id, rec := range s.shares {
		for p := range rec.targets {
			if at, ok := s.arrived[p.String()+"|share|"+id]; ok {
				shareLat = append(shareLat, at.Sub(rec.sentAt))
			}
		}
	}
	for id, rec := range s.requests {
		if at, ok := s.arrived[rec.to.String()+"|request|"+id]; ok {
			requestLat = append(requestLat, at.Sub(rec.at))
		}
	}
	for id, rec := range s.answers {
		if at, ok := s.arrived[rec.to.String()+"|answer|"+id]; ok {
			answerLat = append(answerLat, at.Sub(rec.at))
		}
	}
	r.ShareLatency, r.RequestLatency, r.AnswerLatency = latencyOf(shareLat), latencyOf(requestLat), latencyOf(answerLat)
	for _, rec := range s.shares {
		for _, seen := range rec.targets {
			if !seen && rec.excused {
				r.Withdrawn++
				continue
			}
			r.SharesExpected++
			if seen {
				r.SharesDelivered++
			}
		}
	}
	for _, rec := range s.requests {
		if !rec.seen && rec.merged {
			r.Merged++
			continue
		}
		if !rec.seen && rec.excused {
			r.Withdrawn++
			continue
		}
		r.RequestsExpected++
		if rec.seen {
			r.RequestsDelivered++
		}
	}
	for _, rec := range s.answers {
		if !rec.seen && rec.excused {
			r.Withdrawn++
			continue
		}
		r.AnswersExpected++
		if rec.seen {
			r.AnswersDelivered++
		}
	}
	r.SharesDeliveryRatio = ratio(r.SharesDelivered, r.SharesExpected)
	r.RequestsDeliveryRatio = ratio(r.RequestsDelivered, r.RequestsExpected)
	r.AnswersDeliveryRatio = ratio(r.AnswersDelivered, r.AnswersExpected)
	for _, n := range s.seen {
		if n > 1 {
			r.Duplicates += n - 1
		}
	}
	for _, rn := range s.w.relays {
		t := subTraffic(rn.traffic(), rn.base)
		rl := RelayLoad{Relay: rn.idx, MessagesIn: t.MessagesIn, BytesIn: t.BytesIn, MessagesOut: t.MessagesOut, BytesOut: t.BytesOut,
			Acked: t.Acked, Refusals: rn.refusals(), MailboxEnd: rn.mailbox(), Restarts: rn.restarts}
		for _, u := range s.w.users {
			if slices.Contains(u.homes(), rn.idx) {
				rl.Users++
			}
		}
		rl.RelayPeers = rn.relayPeers()
		rn.mu.Lock()
		rl.DownSeconds = rn.downFor.Seconds()
		rn.mu.Unlock()
		for _, d := range s.depth {
			if rn.idx < len(d.PerRelay) && d.PerRelay[rn.idx] > rl.MailboxPeak {
				rl.MailboxPeak = d.PerRelay[rn.idx]
			}
		}
		for k, v := range rl.Refusals {
			r.Refusals[k] += v
		}
		r.PerRelay = append(r.PerRelay, rl)
	}
	r.Timeline = s.timeline()
	return r
}

// timeline samples the workload every 10 s of virtual time, from its
// start to now: items sent and delivered so far (each share counted once
// per target), and nodes offline. Called with s.mu held.
func (s *sim) timeline() []TimelineSample {
	var sent, arrived []time.Time
	for id, rec := range s.shares {
		for p := range rec.targets {
			sent = append(sent, rec.sentAt)
			if at, ok := s.arrived[p.String()+"|share|"+id]; ok {
				arrived = append(arrived, at)
			}
		}
	}
	for id, rec := range s.requests {
		sent = append(sent, rec.at)
		if at, ok := s.arrived[rec.to.String()+"|request|"+id]; ok {
			arrived = append(arrived, at)
		}
	}
	for id, rec := range s.answers {
		sent = append(sent, rec.at)
		if at, ok := s.arrived[rec.to.String()+"|answer|"+id]; ok {
			arrived = append(arrived, at)
		}
	}
	upTo := func(ts []time.Time, t time.Time) int {
		n := 0
		for _, x := range ts {
			if !x.After(t) {
				n++
			}
		}
		return n
	}
	var out []TimelineSample
	end := time.Now()
	for t := s.workStart; ; t = t.Add(10 * time.Second) {
		if t.After(end) {
			t = end
		}
		off := 0
		for _, c := range s.offline {
			if !c.at.After(t) {
				off += c.delta
			}
		}
		out = append(out, TimelineSample{AtSeconds: t.Sub(s.start).Seconds(), Sent: upTo(sent, t), Delivered: upTo(arrived, t), Offline: off})
		if !t.Before(end) {
			return out
		}
	}
}

// refusals gathers a relay's refusals by reason, this incarnation and
// earlier ones.
func (rn *relayNode) refusals() map[string]int {
	rn.mu.Lock()
	defer rn.mu.Unlock()
	out := map[string]int{}
	for k, v := range rn.pastRefusals {
		out[k] += v
	}
	for k, v := range gatherRefusals(rn.r) {
		out[k] += v
	}
	return out
}

func gatherRefusals(r *rendezvous.Relay) map[string]int {
	out := map[string]int{}
	reg := r.Registry()
	if reg == nil {
		return out
	}
	mfs, err := reg.Gather()
	if err != nil {
		return out
	}
	for _, mf := range mfs {
		switch mf.GetName() {
		case "kith_relay_shares_total", "kith_relay_add_requests_total":
			for _, m := range mf.GetMetric() {
				if l := label(m, "outcome"); l != "accepted" && l != "answer" && l != "" {
					out[shortName(mf.GetName())+":"+l] += int(m.GetCounter().GetValue())
				}
			}
		case "kith_relay_share_failures_total":
			for _, m := range mf.GetMetric() {
				out["share id:"+label(m, "reason")] += int(m.GetCounter().GetValue())
			}
		}
	}
	return out
}

func shortName(n string) string {
	switch n {
	case "kith_relay_shares_total":
		return "share"
	case "kith_relay_add_requests_total":
		return "add"
	}
	return n
}

func label(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

// RunTest runs cfg in a synctest bubble of t and returns the report with
// its wall time and peak memory.
func RunTest(t *testing.T, cfg Config) *Report {
	var rep *Report
	var err error
	start := time.Now()
	synctest.Test(t, func(t *testing.T) {
		rep, err = Run(context.Background(), cfg)
	})
	if err != nil {
		t.Fatal(err)
	}
	rep.WallSeconds = time.Since(start).Seconds()
	rep.PeakRSSBytes = PeakRSS()
	return rep
}

// Main runs cfg as a program and exits: synctest needs a *testing.T, so
// the simulation runs as the one test of a testing.Main, whose own output
// goes to standard error. done receives the report (or the error) and
// returns non-zero to make the program exit 1.
func Main(cfg Config, done func(*Report, error) int) {
	stdout := os.Stdout
	os.Stdout = os.Stderr
	if cfg.Quiet {
		if null, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0); err == nil {
			os.Stdout = null // the framework's PASS line
		}
	}
	quietOut := os.Stdout
	os.Args = os.Args[:1] // testing parses flags; ours are already parsed
	tests := []testing.InternalTest{{Name: "Simulation", F: func(t *testing.T) {
		start := time.Now()
		var rep *Report
		var err error
		synctest.Test(t, func(t *testing.T) {
			rep, err = Run(context.Background(), cfg)
		})
		if rep != nil {
			rep.WallSeconds = time.Since(start).Seconds()
			rep.PeakRSSBytes = PeakRSS()
		}
		os.Stdout = stdout
		code := done(rep, err)
		os.Stdout = quietOut
		if code != 0 {
			t.Fail() // testing.Main then exits 1
		}
	}}}
	testing.Main(func(pat, str string) (bool, error) { return true, nil }, tests, nil, nil)
}

// MainScript runs a scenario script (the language of testdata/*.txt) in
// virtual time, as `kith-simnet script FILE` does: like Main, it needs
// the testing framework for testing/synctest, and exits the process with
// done's code.
func MainScript(script io.Reader, quiet bool, done func(error) int) {
	stdout := os.Stdout
	os.Stdout = os.Stderr
	if quiet {
		if null, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0); err == nil {
			os.Stdout = null
		}
	}
	quietOut := os.Stdout
	os.Args = os.Args[:1]
	tests := []testing.InternalTest{{Name: "Script", F: func(t *testing.T) {
		var err error
		synctest.Test(t, func(t *testing.T) {
			err = RunScript(context.Background(), script)
		})
		os.Stdout = stdout
		code := done(err)
		os.Stdout = quietOut
		if code != 0 {
			t.Fail()
		}
	}}}
	testing.Main(func(pat, str string) (bool, error) { return true, nil }, tests, nil, nil)
}
