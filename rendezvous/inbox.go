package rendezvous

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/record"
	ma "github.com/multiformats/go-multiaddr"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/kithnet/kith/identity"
	"github.com/kithnet/kith/protocols"
	"github.com/kithnet/kith/protocols/pb"
	storepb "github.com/kithnet/kith/rendezvous/pb"
)

// A session is one node's open inbox stream. A pusher pushes the mailbox
// in seq order, keeping at most `window` items unacknowledged; the
// session's handler reads acknowledgements and turns them into deletes.
// The pusher is a goroutine started when there is something to push and
// gone when there is not, so an idle session costs one goroutine of ours
// (the reader), not two. An item is stored, or held in memory and written
// if the session ends, before it is pushed, so a session that dies loses
// nothing: the next login starts again from the first unacknowledged item.
type session struct {
	r      *Relay
	peer   peer.ID
	s      network.Stream
	window int
	since  time.Time
	addrs  []ma.Multiaddr
	done   chan struct{}
	once   sync.Once

	mu       sync.Mutex
	closed   bool
	pushing  bool // a pusher runs
	again    bool // kicked while it ran: look once more before leaving
	pushers  sync.WaitGroup
	lastSent uint64
	inflight map[uint64]struct{}
	waiters  map[uint64][]chan struct{}
}

// kick makes the session look for items to push: it starts a pusher
// unless one runs, which then looks again before it leaves.
func (s *session) kick() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	if s.pushing {
		s.again = true
		return
	}
	s.pushing = true
	s.pushers.Add(1)
	go func() {
		defer s.pushers.Done()
		s.r.pushInbox(s)
	}()
}

// idle ends a pusher's run unless it was kicked meanwhile.
func (s *session) idle() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.again && !s.closed {
		s.again = false
		return false
	}
	s.pushing = false
	return true
}

func (s *session) close() {
	s.once.Do(func() {
		close(s.done)
		s.s.Reset()
		s.mu.Lock()
		s.closed = true
		for _, ws := range s.waiters {
			for _, w := range ws {
				close(w)
			}
		}
		s.waiters = nil
		s.mu.Unlock()
	})
}

// registration is what presence reveals about a peer that logged in here.
type registration struct {
	addrs    []ma.Multiaddr
	lastSeen time.Time
}

// sessions tracks who is logged in, and who was recently.
type sessions struct {
	sessionDeps
	mu   sync.Mutex
	live map[peer.ID]*session
	regs map[peer.ID]registration
}

// sessionDeps is what the sessions need of the relay.
type sessionDeps struct {
	clock func() time.Time
	ttl   time.Duration // how long presence remembers a registration (Config.RegistrationTTL)
	// protect keeps a logged-in peer's connection from the connection
	// manager's trims; unprotect lets it go.
	protect, unprotect func(p peer.ID)
	// itemState is what the mailbox of r knows of item id.
	itemState func(r peer.ID, id string) (idRecord, bool)
}

func newSessions(deps sessionDeps) *sessions {
	return &sessions{sessionDeps: deps, live: map[peer.ID]*session{}, regs: map[peer.ID]registration{}}
}

func (ss *sessions) get(p peer.ID) *session {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	return ss.live[p]
}

// registered reports whether p has logged in within the registration TTL.
func (ss *sessions) registered(p peer.ID) bool {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if ss.live[p] != nil {
		return true
	}
	reg, ok := ss.regs[p]
	return ok && ss.clock().Sub(reg.lastSeen) < ss.ttl
}

func (ss *sessions) count() int {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	return len(ss.live)
}

// add makes s the session of its peer, ending an older one.
func (ss *sessions) add(s *session) {
	ss.mu.Lock()
	old := ss.live[s.peer]
	ss.live[s.peer] = s
	ss.regs[s.peer] = registration{addrs: s.addrs, lastSeen: ss.clock()}
	ss.mu.Unlock()
	if old != nil {
		old.close()
	}
	ss.protect(s.peer)
}

func (ss *sessions) remove(s *session) {
	ss.mu.Lock()
	if ss.live[s.peer] == s {
		delete(ss.live, s.peer)
		ss.regs[s.peer] = registration{addrs: s.addrs, lastSeen: ss.clock()}
		ss.unprotect(s.peer)
	}
	ss.mu.Unlock()
	s.close()
}

func (ss *sessions) kick(peers []peer.ID) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	for _, p := range peers {
		if s := ss.live[p]; s != nil {
			s.kick()
		}
	}
}

func (ss *sessions) closeAll() {
	ss.mu.Lock()
	all := make([]*session, 0, len(ss.live))
	for _, s := range ss.live {
		all = append(all, s)
	}
	ss.mu.Unlock()
	for _, s := range all {
		s.close()
	}
}

func (ss *sessions) expire(now time.Time) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	for p, reg := range ss.regs {
		if ss.live[p] == nil && now.Sub(reg.lastSeen) >= ss.ttl {
			delete(ss.regs, p)
		}
	}
}

// window reports whether p has a live inbox session, and its window.
func (ss *sessions) window(p peer.ID) (int, bool) {
	s := ss.get(p)
	if s == nil {
		return 0, false
	}
	select {
	case <-s.done:
		return 0, false
	default:
		return s.window, true
	}
}

// lookup returns what presence may reveal about p.
func (ss *sessions) lookup(p peer.ID) (online bool, reg registration, known bool) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if s := ss.live[p]; s != nil {
		return true, registration{addrs: s.addrs, lastSeen: ss.clock()}, true
	}
	reg, known = ss.regs[p]
	if known && ss.clock().Sub(reg.lastSeen) >= ss.ttl {
		return false, registration{}, false
	}
	return false, reg, known
}

// waitAcked waits until recipient acknowledges item seq (true), or until
// timeout or the session ends (false).
func (ss *sessions) waitAcked(ctx context.Context, recipient peer.ID, id string, seq uint64, timeout time.Duration) bool {
	s := ss.get(recipient)
	if s == nil || timeout <= 0 {
		return false
	}
	w := make(chan struct{})
	s.mu.Lock()
	if s.waiters == nil { // closed
		s.mu.Unlock()
		return false
	}
	s.waiters[seq] = append(s.waiters[seq], w)
	s.mu.Unlock()
	// It may have been acknowledged before the waiter was in place.
	if rec, ok := ss.itemState(recipient, id); ok && rec.seq == seq && rec.state != storepb.ItemState_PENDING {
		return rec.state == storepb.ItemState_ACKED
	}
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-w:
		rec, ok := ss.itemState(recipient, id)
		return ok && rec.seq == seq && rec.state == storepb.ItemState_ACKED
	case <-t.C:
	case <-ctx.Done():
	}
	s.mu.Lock()
	if s.waiters != nil {
		ws := s.waiters[seq]
		for i, x := range ws {
			if x == w {
				s.waiters[seq] = append(ws[:i], ws[i+1:]...)
				break
			}
		}
		if len(s.waiters[seq]) == 0 {
			delete(s.waiters, seq)
		}
	}
	s.mu.Unlock()
	return false
}

// inboxReadBuffer is an inbox session's read buffer: a node sends a login,
// then acknowledgements of a few bytes per item.
const inboxReadBuffer = 512

// sessionMemory is what one inbox session reserves from the resource
// manager.
const sessionMemory = 16 << 10

func (r *Relay) handleInbox(st network.Stream) {
	if err := st.Scope().SetService(ServiceName); err != nil {
		st.Reset()
		return
	}
	// A session lives for hours: reserve what it typically holds (a read
	// buffer and a few frames in flight), not its largest possible frame.
	if err := st.Scope().ReserveMemory(sessionMemory, network.ReservationPriorityAlways); err != nil {
		st.Reset()
		return
	}
	handedOff := false
	defer func() {
		if !handedOff {
			st.Scope().ReleaseMemory(sessionMemory)
		}
	}()
	remote := st.Conn().RemotePeer()
	log := r.log.With("peer", remote.String())

	// Stream deadlines are the transport's, in real time; r.clock is the
	// time decisions are made at (a test's or a simulation's).
	st.SetDeadline(time.Now().Add(protocols.StreamDeadline))
	rd := protocols.NewReaderSize(st, protocols.MaxInboxClient, inboxReadBuffer)
	refuse := func(err error) {
		status, text := statusText(err)
		res := &pb.LoginResult{Status: status, Text: text}
		protocols.WriteMsg(st, &pb.InboxServer{Msg: &pb.InboxServer_Result{Result: res}})
		st.Close()
	}
	frame, err := rd.ReadFrame()
	login, err := decodeLogin(frame, err)
	if err != nil {
		r.trace.login(outcomeLabel(protocols.StatusOf(err)))
		refuse(err)
		return
	}
	if !r.limits.allow("login", remote, r.cfg.LoginRate) {
		r.trace.login("rate_limited")
		refuse(protocols.Errorf(pb.Status_RATE_LIMITED, "too many logins; retry later"))
		return
	}
	now := r.clock()
	prof, addrs, err := checkLogin(r.verifier, login, remote, now)
	if err != nil {
		r.trace.login(outcomeLabel(protocols.StatusOf(err)))
		refuse(err)
		return
	}
	addrs = append(addrs, r.circuitAddrs()...) // a node behind NAT is reachable through this relay
	if err := r.store.putProfile(r.ctx, prof); err != nil {
		refuse(protocols.Errorf(pb.Status_UNAVAILABLE, "the relay cannot store your profile now; retry"))
		return
	}
	if r.routing != nil {
		r.routing.publish(r.store.profile(remote)) // the newest, which may be an earlier login's
	}
	window := r.cfg.window(login.Window)
	s := &session{
		peer: remote, s: st, window: window, since: now, addrs: addrs,
		r: r, done: make(chan struct{}),
		pushing:  true, // not before the login result is written
		inflight: map[uint64]struct{}{}, waiters: map[uint64][]chan struct{}{},
	}
	waiting, _ := r.store.depth(remote)
	res := &pb.LoginResult{Status: pb.Status_OK, Waiting: uint64(waiting), ServerTime: now.Unix(),
		TtlSeconds: int64(r.cfg.RegistrationTTL.D() / time.Second)}
	// Registered before the node hears OK, so that whatever it does next
	// (reserve a circuit slot, ask presence) already sees it logged in.
	r.sessions.add(s)
	st.SetWriteDeadline(time.Now().Add(protocols.FrameDeadline))
	if err := protocols.WriteMsg(st, &pb.InboxServer{Msg: &pb.InboxServer_Result{Result: res}}); err != nil {
		r.sessions.remove(s)
		return
	}
	st.SetDeadline(time.Time{})
	r.trace.login("ok")
	log.Debug("logged in", "waiting", waiting, "window", window)

	// The session lives for hours on a goroutine of its own: this one's
	// stack grew deep in protocol negotiation and the login's checks, and
	// a parked goroutine keeps its stack (about 8 KiB per user).
	handedOff = true
	go r.runSession(s, rd, log)
}

// runSession pushes s's mailbox and reads its acknowledgements until the
// stream ends, then writes to disk what was held in memory for it.
func (r *Relay) runSession(s *session, rd *protocols.Reader, log *slog.Logger) {
	defer s.s.Scope().ReleaseMemory(sessionMemory)
	defer r.sessions.remove(s)
	s.mu.Lock()
	s.pushing = false
	s.mu.Unlock()
	s.kick()
	r.readAcks(s, rd, log)
	s.close()
	s.pushers.Wait()
	r.sessions.remove(s)
	if err := r.store.persistHeld(r.ctx, s.peer); err != nil && !errors.Is(err, ErrClosed) && r.ctx.Err() == nil {
		log.Error("storing held items failed", "err", err)
	}
}

// circuitAddrs are the relay's addresses through which its users can be
// reached over circuit relay v2.
func (r *Relay) circuitAddrs() []ma.Multiaddr {
	c, err := ma.NewMultiaddr("/p2p/" + r.h.ID().String() + "/p2p-circuit")
	if err != nil {
		return nil
	}
	var out []ma.Multiaddr
	for _, a := range r.h.Addrs() {
		out = append(out, a.Encapsulate(c))
	}
	return out
}

// decodeLogin reads a session's first frame, or the error reading it, as a
// login. Every failure is a *protocols.StatusError of BAD_REQUEST or
// TOO_LARGE: whatever a client sends, it is told what was wrong with it.
func decodeLogin(frame []byte, readErr error) (*pb.Login, error) {
	if readErr != nil {
		s, text := statusText(readErr)
		switch {
		case errors.Is(readErr, io.EOF):
			text = "the stream ended before a login was sent"
		case s != pb.Status_TOO_LARGE && s != pb.Status_BAD_REQUEST:
			text = "the login could not be read: " + readErr.Error()
		}
		if s != pb.Status_TOO_LARGE {
			s = pb.Status_BAD_REQUEST
		}
		return nil, protocols.Errorf(s, "%s", text)
	}
	m, err := protocols.DecodeInboxClient(frame)
	if err != nil {
		return nil, err
	}
	login := m.GetLogin()
	if login == nil {
		return nil, protocols.Errorf(pb.Status_BAD_REQUEST, "the first inbox message must be a login")
	}
	return login, nil
}

// maxLoginAddrs bounds the addresses a login's peer record may announce.
const maxLoginAddrs = 16

// checkLogin verifies a login on a connection authenticated as remote: its
// profile (REFUSED if it does not verify, UNAUTHORIZED if it is someone
// else's) and its peer record (UNAUTHORIZED unless remote signed it). It
// returns the profile and the announced addresses, at most maxLoginAddrs.
func checkLogin(v *identity.Verifier, login *pb.Login, remote peer.ID, now time.Time) (*identity.Profile, []ma.Multiaddr, error) {
	prof, err := v.Profile(login.Profile, now)
	if err != nil {
		return nil, nil, protocols.Errorf(pb.Status_REFUSED, "login profile: %v", err)
	}
	if prof.Owner != remote {
		return nil, nil, protocols.Errorf(pb.Status_UNAUTHORIZED, "the profile is %s's, but the connection is %s's", prof.Owner, remote)
	}
	if len(login.PeerRecord) == 0 {
		return prof, nil, nil
	}
	var rec peer.PeerRecord
	if _, err := record.ConsumeTypedEnvelope(login.PeerRecord, &rec); err != nil || rec.PeerID != remote {
		return nil, nil, protocols.Errorf(pb.Status_UNAUTHORIZED, "the peer record is not signed by %s", remote)
	}
	if len(rec.Addrs) > maxLoginAddrs {
		rec.Addrs = rec.Addrs[:maxLoginAddrs]
	}
	return prof, rec.Addrs, nil
}

// pushInbox sends the mailbox of s in seq order, up to the window, in
// writes of at most pushChunk bytes so that the node starts on the first
// items while the relay reads the next, until nothing more can be sent.
func (r *Relay) pushInbox(s *session) {
	// A pusher runs for each burst (often one item): its write buffer
	// comes from a pool rather than growing anew each time (that growth
	// was a fifth of the relay's allocated bytes under load).
	bp := pushBufs.Get().(*[]byte)
	buf := (*bp)[:0]
	defer func() {
		if cap(buf) <= maxPooledPushBuf {
			*bp = buf[:0]
			pushBufs.Put(bp)
		}
	}()
	for {
		s.mu.Lock()
		room, after := s.window-len(s.inflight), s.lastSent
		s.mu.Unlock()
		more := false
		if room > 0 {
			// A few at a time, so that the node works on the first items
			// while the relay reads the next.
			seqs, items, next, full := r.store.itemsAfter(r.ctx, s.peer, after, min(room, pushBatch))
			more = full
			s.mu.Lock()
			for _, seq := range seqs {
				s.inflight[seq] = struct{}{}
			}
			s.lastSent = next
			s.mu.Unlock()
			buf = buf[:0]
			flush := func(n int) bool {
				if len(buf) == 0 {
					return true
				}
				s.s.SetWriteDeadline(time.Now().Add(protocols.FrameDeadline))
				if _, err := s.s.Write(buf); err != nil {
					s.close()
					return false
				}
				r.trace.pushed(n)
				r.traffic.out(n, len(buf))
				buf = buf[:0]
				return true
			}
			inBuf := 0
			for _, item := range items {
				buf = appendItemFrame(buf, item)
				inBuf++
				if len(buf) >= pushChunk {
					if !flush(inBuf) {
						return
					}
					inBuf = 0
				}
			}
			if !flush(inBuf) {
				return
			}
		}
		if more {
			continue // more may be waiting
		}
		if s.idle() {
			return
		}
	}
}

// pushChunk bounds one write of pushed items.
const pushChunk = 64 << 10

// pushBufs holds pushers' write buffers; maxPooledPushBuf is the largest
// kept (a chunk and one item past it; a larger one, grown for a rare
// large item, is left to the GC).
var pushBufs = sync.Pool{New: func() any { b := make([]byte, 0, 8<<10); return &b }}

const maxPooledPushBuf = pushChunk + 16<<10

// pushBatch bounds the items read from the store for one round of writes.
const pushBatch = 64

// appendItemFrame frames a stored InboxItem as an InboxServer message
// without decoding it: field 2 (item), length-delimited.
func appendItemFrame(dst, item []byte) []byte {
	n := protowire.SizeTag(2) + protowire.SizeBytes(len(item))
	dst = protowire.AppendVarint(dst, uint64(n))
	dst = protowire.AppendTag(dst, 2, protowire.BytesType)
	return protowire.AppendBytes(dst, item)
}

// readAcks reads acknowledgements until the stream ends.
func (r *Relay) readAcks(s *session, rd *protocols.Reader, log interface {
	Debug(string, ...any)
}) {
	for {
		frame, err := rd.ReadFrame()
		if err != nil {
			if !errors.Is(err, io.EOF) {
				log.Debug("inbox closed", "err", err)
			}
			return
		}
		m, err := protocols.DecodeInboxClient(frame)
		if err != nil || m.GetAck() == nil {
			r.traffic.in(len(frame))
			log.Debug("inbox protocol violation", "err", err)
			return
		}
		seqs := m.GetAck().Seqs
		r.traffic.ack(len(frame), len(seqs))
		acked, err := r.store.ack(r.ctx, s.peer, seqs)
		if err != nil {
			return
		}
		r.trace.delivered(len(acked))
		s.mu.Lock()
		for _, seq := range seqs {
			delete(s.inflight, seq)
			for _, w := range s.waiters[seq] {
				close(w)
			}
			delete(s.waiters, seq)
		}
		s.mu.Unlock()
		s.kick()
	}
}
