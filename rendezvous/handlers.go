package rendezvous

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/peerstore"
	ma "github.com/multiformats/go-multiaddr"
	"google.golang.org/protobuf/proto"

	"github.com/kithnet/kith/identity"
	"github.com/kithnet/kith/protocols"
	"github.com/kithnet/kith/protocols/pb"
	storepb "github.com/kithnet/kith/rendezvous/pb"
)

// serve runs request/response exchanges on st, the way every Kith request
// protocol works: a service scope and a memory reservation for the largest
// frame, a deadline per exchange, one frame read with a size cap, one
// response written. A client may send further requests on the same
// stream, each answered in turn (a sharer keeps one stream instead of
// opening one per share); the stream ends when the client closes its side
// or stays idle past the deadline. The handler sees the frame or the
// framing error and returns the response; it never sees the stream.
func (r *Relay) serve(st network.Stream, max int, handle func(ctx context.Context, remote peer.ID, frame []byte, readErr error) proto.Message) {
	if err := st.Scope().SetService(ServiceName); err != nil {
		st.Reset()
		return
	}
	// The stream holds memory for the frames it carries, reserved as its
	// read buffer grows (a share is some kilobytes; the cap is a MiB).
	reserved := 0
	defer func() { st.Scope().ReleaseMemory(reserved) }()
	rd := protocols.NewReader(st, max)
	rd.SetReserve(func(n int) error {
		if err := st.Scope().ReserveMemory(n, network.ReservationPriorityAlways); err != nil {
			return err
		}
		reserved += n
		return nil
	})
	remote := st.Conn().RemotePeer()
	var out []byte
	for first := true; ; first = false {
		st.SetDeadline(time.Now().Add(protocols.StreamDeadline))
		frame, err := rd.ReadFrame()
		if !first && errors.Is(err, io.EOF) {
			st.Close()
			return
		}
		if err == nil {
			r.traffic.in(len(frame))
		}
		ctx, cancel := context.WithTimeout(r.ctx, protocols.StreamDeadline)
		resp := handle(ctx, remote, frame, err)
		cancel()
		var err2 error
		out, err2 = protocols.AppendFrame(out[:0], resp)
		if err2 != nil {
			st.Reset()
			return
		}
		if _, err2 := st.Write(out); err2 != nil {
			st.Reset()
			return
		}
		r.traffic.out(1, len(out))
		if err != nil {
			// A framing error leaves the stream out of step: answer it, then
			// end the stream.
			st.Close()
			return
		}
	}
}

// statusText returns the status of err and the words that explain it.
func statusText(err error) (pb.Status, string) {
	if errors.Is(err, ErrClosed) {
		return pb.Status_UNAVAILABLE, "the relay is shutting down; retry"
	}
	if errors.Is(err, io.EOF) {
		return pb.Status_BAD_REQUEST, "the stream ended before a request was sent"
	}
	s := protocols.StatusOf(err)
	var se *protocols.StatusError
	if errors.As(err, &se) {
		return s, se.Text
	}
	if s == pb.Status_INTERNAL {
		return s, "internal error"
	}
	return s, err.Error()
}

func outcomeLabel(s pb.Status) string {
	switch s {
	case pb.Status_OK:
		return "accepted"
	case pb.Status_STATUS_UNSPECIFIED:
		return "unspecified"
	}
	return map[pb.Status]string{
		pb.Status_BAD_REQUEST: "bad_request", pb.Status_TOO_LARGE: "too_large", pb.Status_UNAUTHORIZED: "unauthorized",
		pb.Status_REFUSED: "refused", pb.Status_REPLAY: "replay", pb.Status_QUOTA_EXCEEDED: "quota_exceeded",
		pb.Status_RATE_LIMITED: "rate_limited", pb.Status_NOT_FOUND: "not_found", pb.Status_UNAVAILABLE: "unavailable",
		pb.Status_INTERNAL: "internal",
	}[s]
}

// ---- share

func (r *Relay) handleShare(st network.Stream) {
	r.serve(st, protocols.MaxShareMessage, func(ctx context.Context, remote peer.ID, frame []byte, readErr error) proto.Message {
		resp := r.acceptShare(ctx, remote, frame, readErr)
		r.trace.shareAnswered(resp.Status, resp.Failures)
		return resp
	})
}

// acceptShare is the patent's server check (step 104) and forward (105,
// 106): the share must be sealed by the peer that sent it, every
// attestation must hold, its id must be new; then it is stored for each
// target and pushed to those online.
func (r *Relay) acceptShare(ctx context.Context, remote peer.ID, raw []byte, readErr error) *pb.ShareResponse {
	fail := func(err error) *pb.ShareResponse {
		s, text := statusText(err)
		resp := &pb.ShareResponse{Status: s, Text: text}
		var se *protocols.StatusError
		if errors.As(err, &se) {
			for _, f := range se.Failures {
				resp.Failures = append(resp.Failures, f.ToWire())
			}
		}
		return resp
	}
	if readErr != nil {
		return fail(readErr)
	}
	if !r.limits.allow("share", remote, r.cfg.ShareRate) {
		return fail(protocols.Errorf(pb.Status_RATE_LIMITED, "too many shares; retry later"))
	}
	u, err := protocols.DecodeShare(raw, r.cfg.limits())
	if err != nil {
		return fail(err)
	}
	if u.Sharer != remote {
		return fail(protocols.Errorf(pb.Status_UNAUTHORIZED, "the share is signed for %s but was sent by %s", u.Sharer, remote))
	}
	now := r.clock()
	start := time.Now()
	verdict, err := protocols.VerifyShare(r.verifier, u, now, r.store.profile)
	r.trace.shareVerified(time.Since(start))
	if err != nil {
		return fail(err)
	}
	if verdict.Refused(u.Mode) {
		return refusedShare(u, verdict)
	}
	// A target whose home relays are elsewhere now is not stored for
	// here: the sender hears MOVED with the newer profile, and sends there.
	verdict.Targets = slices.DeleteFunc(verdict.Targets, func(t protocols.ShareTarget) bool {
		if prof := r.movedAway(ctx, t.Peer); prof != nil {
			verdict.Failures = append(verdict.Failures, movedFailure(t.Peer, pb.Role_TARGET, prof))
			return true
		}
		return false
	})
	if len(verdict.Targets) == 0 {
		return answerShare(u, verdict, nil, nil)
	}
	plan := planShare(u, verdict, now, r.cfg.MailboxTTL.D())
	out, err := r.store.acceptShare(ctx, plan.rec, u.ID, plan.items)
	if errors.Is(err, errReplay) {
		return fail(protocols.Errorf(pb.Status_REPLAY, "share %s was already sent with other contents", u.ID))
	}
	if err != nil {
		return fail(err)
	}
	deliveries, err := r.deliveries(ctx, plan.items, out.results)
	if err != nil {
		return fail(err)
	}
	for i, res := range out.results {
		switch {
		case res.outcome == putOverQuota:
			r.trace.mailboxFull(res.fullRoom())
		case res.outcome == putStored && (deliveries[i] == pb.Delivery_DELIVERED || deliveries[i] == pb.Delivery_STORED):
			r.trace.itemStored("share")
		}
	}
	return answerShare(u, verdict, out.results, deliveries)
}

// deliveries turns store outcomes into what the sender is told, waiting
// (in parallel, up to DeliverWait) for online recipients to acknowledge
// what was just stored for them. An item held in memory that is not
// acknowledged in that time is written to disk before the sender hears
// "stored"; if that fails the sender is told to retry.
func (r *Relay) deliveries(ctx context.Context, items []newItem, results []putResult) ([]pb.Delivery, error) {
	out := make([]pb.Delivery, len(items))
	errs := make([]error, len(items))
	var wg sync.WaitGroup
	for i := range items {
		switch results[i].outcome {
		case putDupDelivered:
			out[i] = pb.Delivery_DELIVERED
		case putStored, putDupPending:
			// A retry of an item held in memory waits as the first
			// attempt does: "stored" must mean on disk.
			out[i] = pb.Delivery_STORED
			if results[i].outcome == putDupPending && !results[i].held {
				continue
			}
			online := r.sessions.get(items[i].recipient) != nil
			if !online && !results[i].held {
				continue
			}
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				it, res := items[i], results[i]
				if online && r.sessions.waitAcked(ctx, it.recipient, it.id, res.seq, r.cfg.DeliverWait.D()) {
					out[i] = pb.Delivery_DELIVERED
					if res.held {
						r.trace.held("acknowledged")
					}
					return
				}
				if !res.held {
					return
				}
				// Written even if the sender is gone: it was accepted.
				state, ok, err := r.store.persist(r.ctx, it.recipient, it.id, res.seq)
				switch {
				case err != nil:
					errs[i] = err
				case !ok:
					errs[i] = protocols.Errorf(pb.Status_UNAVAILABLE, "the relay lost an item before storing it; retry")
				case state == storepb.ItemState_ACKED: // just after the wait
					out[i] = pb.Delivery_DELIVERED
					r.trace.held("acknowledged")
				default:
					r.trace.held("stored")
				}
			}(i)
		default:
			out[i] = pb.Delivery_NOT_SENT
		}
	}
	wg.Wait()
	return out, errors.Join(errs...)
}

// movedAway returns p's newest profile known here if it names home relays
// and this relay is not one of them: p has moved (their node logged in
// here once more to collect what waited, or the profile came another
// way), or p never was a user here and the DHT has their profile (a
// sender that did not know where p lives sent to its own relay; stored
// here, it would wait for a login that never comes). Nil otherwise.
func (r *Relay) movedAway(ctx context.Context, p peer.ID) *identity.Profile {
	prof := r.store.profile(p)
	if prof == nil && r.routing != nil && !r.sessions.registered(p) {
		lctx, cancel := context.WithTimeout(ctx, r.cfg.DHT.LookupTimeout.D())
		prof = r.routing.lookup(lctx, p)
		cancel()
	}
	if prof == nil || len(prof.Relays) == 0 {
		return nil
	}
	for _, a := range prof.Relays {
		if id, err := peer.IDFromP2PAddr(a); err == nil && id == r.h.ID() {
			return nil
		}
	}
	return prof
}

func movedFailure(p peer.ID, role pb.Role, prof *identity.Profile) protocols.Failure {
	return protocols.Failure{Peer: p, Role: role, Reason: pb.Reason_MOVED, Detail: movedDetail(prof), Profile: prof.Raw}
}

func movedDetail(prof *identity.Profile) string {
	return fmt.Sprintf("%s's home relays are elsewhere now; send to the ones their profile (seq %d) names", identity.ShortID(prof.Owner), prof.Seq)
}

// ---- add

func (r *Relay) handleAdd(st network.Stream) {
	r.serve(st, protocols.MaxAddMessage, func(ctx context.Context, remote peer.ID, frame []byte, readErr error) proto.Message {
		return r.acceptAdd(ctx, remote, frame, readErr)
	})
}

// acceptAdd fans a combined add request out (claim 5): each request is
// verified (the requester's signature, its offer, and its introduction or
// invite), then stored for its recipient and pushed if they are online. An
// answer (the countersigned attestation) travels back the same way.
func (r *Relay) acceptAdd(ctx context.Context, remote peer.ID, frame []byte, readErr error) *pb.AddResponse {
	fail := func(err error) *pb.AddResponse {
		s, text := statusText(err)
		r.trace.addOutcome(outcomeLabel(s))
		return &pb.AddResponse{Status: s, Text: text}
	}
	if readErr != nil {
		return fail(readErr)
	}
	if !r.limits.allow("add", remote, r.cfg.AddRate) {
		return fail(protocols.Errorf(pb.Status_RATE_LIMITED, "too many add requests; retry later"))
	}
	m, reqs, err := protocols.DecodeAddMessage(frame, r.cfg.limits())
	if err != nil {
		return fail(err)
	}
	now := r.clock()
	if ans := m.GetAnswer(); ans != nil {
		return r.acceptAnswer(ctx, remote, ans, now)
	}
	if cm := m.GetConsent(); cm != nil {
		return r.acceptConsent(ctx, remote, cm, now)
	}
	if m.GetCancel() != nil {
		return fail(protocols.Errorf(pb.Status_BAD_REQUEST, "a relay takes a cancel as the revocation it is, on %s", protocols.RevokeProtocol))
	}
	// Every request counts, not only every message: one combined message
	// carries up to 64.
	if !r.limits.allowN("request", remote, len(reqs), r.cfg.RequestRate) {
		return fail(protocols.Errorf(pb.Status_RATE_LIMITED, "too many add requests; retry later"))
	}
	resp := &pb.AddResponse{Status: pb.Status_OK}
	var items []newItem
	var slots []int // index in resp.Results of each item
	for _, u := range reqs {
		if u.From != remote {
			return fail(protocols.Errorf(pb.Status_UNAUTHORIZED, "a request signed for %s was sent by %s", u.From, remote))
		}
		res := &pb.AddResult{RequestId: u.ID[:], To: []byte(u.To)}
		resp.Results = append(resp.Results, res)
		deps, err := r.verifyAdd(u, now)
		if prof := r.movedAway(ctx, u.To); err == nil && prof != nil {
			res.Delivery, res.Reason, res.Profile = pb.Delivery_NOT_SENT, pb.Reason_MOVED, prof.Raw
			res.Detail = movedDetail(prof)
			r.trace.addOutcome("moved")
			continue
		}
		if errors.Is(err, errInviteThrottled) {
			res.Delivery, res.Reason = pb.Delivery_NOT_SENT, pb.Reason_THROTTLED
			res.Detail = "too many requests rest on this invite now; retry later"
			r.trace.addOutcome("throttled")
			continue
		}
		if err != nil {
			res.Delivery = pb.Delivery_NOT_SENT
			res.Reason = protocols.WireReason(identity.ReasonOf(err))
			res.Detail = err.Error()
			r.trace.addOutcome("refused")
			continue
		}
		payload, _ := proto.Marshal(u.Wire)
		items = append(items, newItem{recipient: u.To, id: string(u.ID[:]), kind: pb.ItemKind_ADD_REQUEST, payload: payload, from: u.From, deps: deps})
		slots = append(slots, len(resp.Results)-1)
	}
	if len(items) > 0 {
		results, err := r.store.put(ctx, items)
		if err != nil {
			return fail(err)
		}
		ds, err := r.deliveries(ctx, items, results)
		if err != nil {
			return fail(err)
		}
		for i, slot := range slots {
			res := resp.Results[slot]
			res.Delivery = ds[i]
			switch results[i].outcome {
			case putOverQuota:
				res.Reason = pb.Reason_MAILBOX_FULL
				res.Detail = fullDetail(results[i])
				r.trace.addOutcome("quota_exceeded")
				r.trace.mailboxFull(results[i].fullRoom())
			case putWithdrawn:
				res.Reason = pb.Reason_REVOKED
				r.trace.addOutcome("refused")
			case putStored:
				r.trace.itemStored("add_request")
				r.trace.addOutcome("accepted")
			default:
				r.trace.addOutcome("duplicate")
			}
		}
	}
	if len(items) == 0 {
		resp.Status, resp.Text = pb.Status_REFUSED, "no request could be sent"
	}
	return resp
}

// errInviteThrottled refuses a request resting on an invite that too many
// requests used just now (Config.InviteRate).
var errInviteThrottled = errors.New("rendezvous: too many requests on this invite")

// fullDetail says which room a putOverQuota found full, for the sender.
func fullDetail(res putResult) string {
	switch res.fullRoom() {
	case "store":
		return "the relay's store is full; retry later or through another relay"
	case "store_strangers":
		return "the relay's store has no room left for requests from people who are not friends yet; retry later"
	case "strangers":
		return "their mailbox has no room left for requests from people who are not their friends yet; retry later"
	}
	return "their mailbox is full; retry later"
}

// verifyAdd checks one request and returns the attestations it rests on.
// A request resting on an invite also takes a token of that invite's
// bucket, once the invite is known to be the recipient's.
func (r *Relay) verifyAdd(u *protocols.UnverifiedAddRequest, now time.Time) ([]identity.AttestationID, error) {
	req, err := protocols.VerifyAddRequest(r.verifier, u, now)
	if err != nil {
		return nil, err
	}
	if req.Introduction == nil {
		// No introduction: the recipient's own invite must vouch for it.
		in, err := r.verifier.Invite(u.Invite, now)
		if err != nil {
			return nil, err
		}
		if in.Inviter != u.To {
			return nil, &identity.VerifyError{Record: "invite", Reason: identity.ReasonWrongPair,
				Detail: fmt.Sprintf("the invite is %s's, the request is to %s", identity.ShortID(in.Inviter), identity.ShortID(u.To))}
		}
		// The inviter's newest profile (from their login here) lists the
		// invites they withdrew before these expire.
		if r.store.profile(in.Inviter).InviteRevoked(in.Token) {
			return nil, &identity.VerifyError{Record: "invite", Reason: identity.ReasonRevoked,
				Detail: "the invite was withdrawn by its owner (revoked, or used as many times as it allowed): ask them for a new one"}
		}
		if !r.limits.allowKey("invite", string(in.Inviter)+string(in.Token[:]), r.cfg.InviteRate) {
			return nil, errInviteThrottled
		}
		// Its requester revoking the offer (a cancel) withdraws it.
		return []identity.AttestationID{req.Offer.ID}, nil
	}
	// Each introduction proved its sharer's friendships with both sides
	// (VerifyAddRequest checked them, revocations included); revoking
	// any withdraws the request, and so does its requester revoking the
	// offer (a cancel).
	deps := []identity.AttestationID{req.Offer.ID}
	for _, in := range req.Introductions() {
		deps = append(deps, in.RecipientAttestation, in.SubjectAttestation)
	}
	return deps, nil
}

func (r *Relay) acceptAnswer(ctx context.Context, remote peer.ID, ans *pb.AddAnswer, now time.Time) *pb.AddResponse {
	id, _ := protocols.DecodeAddAnswer(ans)
	att, err := r.verifier.Attestation(ans.Attestation, now)
	if err != nil {
		r.trace.addOutcome("refused")
		return &pb.AddResponse{Status: pb.Status_REFUSED, Text: err.Error(),
			Results: []*pb.AddResult{{RequestId: id[:], Delivery: pb.Delivery_NOT_SENT, Reason: protocols.WireReason(identity.ReasonOf(err)), Detail: err.Error()}}}
	}
	to := att.Other(remote)
	if to == "" {
		return &pb.AddResponse{Status: pb.Status_UNAUTHORIZED, Text: "the answer's attestation does not name the sender"}
	}
	if prof := r.movedAway(ctx, to); prof != nil {
		r.trace.addOutcome("moved")
		return &pb.AddResponse{Status: pb.Status_REFUSED, Text: movedDetail(prof), Results: []*pb.AddResult{{
			RequestId: id[:], To: []byte(to), Delivery: pb.Delivery_NOT_SENT, Reason: pb.Reason_MOVED, Detail: movedDetail(prof), Profile: prof.Raw}}}
	}
	payload, _ := proto.Marshal(ans)
	items := []newItem{{recipient: to, id: string(id[:]), kind: pb.ItemKind_ADD_ANSWER, payload: payload, from: remote, deps: []identity.AttestationID{att.ID}}}
	results, err := r.store.put(ctx, items)
	if err != nil {
		s, text := statusText(err)
		return &pb.AddResponse{Status: s, Text: text}
	}
	ds, err := r.deliveries(ctx, items, results)
	if err != nil {
		s, text := statusText(err)
		return &pb.AddResponse{Status: s, Text: text}
	}
	d := ds[0]
	res := &pb.AddResult{RequestId: id[:], To: []byte(to), Delivery: d}
	if results[0].outcome == putOverQuota {
		res.Reason = pb.Reason_MAILBOX_FULL
		res.Detail = fullDetail(results[0])
		r.trace.mailboxFull(results[0].fullRoom())
		return &pb.AddResponse{Status: pb.Status_QUOTA_EXCEEDED, Text: "their mailbox is full", Results: []*pb.AddResult{res}}
	}
	if results[0].outcome == putWithdrawn {
		res.Reason = pb.Reason_REVOKED
		return &pb.AddResponse{Status: pb.Status_REFUSED, Text: "the friendship was revoked", Results: []*pb.AddResult{res}}
	}
	if results[0].outcome == putStored {
		r.trace.itemStored("add_answer")
	}
	r.trace.addOutcome("answer")
	return &pb.AddResponse{Status: pb.Status_OK, Results: []*pb.AddResult{res}}
}

// acceptConsent stores and forwards a consent ask or answer between two
// friends: signed by its sender, on their friendship.
func (r *Relay) acceptConsent(ctx context.Context, remote peer.ID, m *pb.ConsentMessage, now time.Time) *pb.AddResponse {
	c, _ := protocols.DecodeConsentMessage(m)
	if c.From != remote {
		return &pb.AddResponse{Status: pb.Status_UNAUTHORIZED, Text: "a consent message signed for another sender"}
	}
	att, err := protocols.VerifyConsentMessage(r.verifier, c, now)
	if err != nil {
		r.trace.addOutcome("refused")
		return &pb.AddResponse{Status: pb.Status_REFUSED, Text: err.Error(),
			Results: []*pb.AddResult{{RequestId: c.ID[:], To: []byte(c.To), Delivery: pb.Delivery_NOT_SENT, Reason: protocols.WireReason(identity.ReasonOf(err)), Detail: err.Error()}}}
	}
	if prof := r.movedAway(ctx, c.To); prof != nil {
		return &pb.AddResponse{Status: pb.Status_REFUSED, Text: movedDetail(prof), Results: []*pb.AddResult{{
			RequestId: c.ID[:], To: []byte(c.To), Delivery: pb.Delivery_NOT_SENT, Reason: pb.Reason_MOVED, Detail: movedDetail(prof), Profile: prof.Raw}}}
	}
	payload, _ := proto.Marshal(m)
	kind := "q"
	if c.Answer {
		kind = "a"
	}
	items := []newItem{{recipient: c.To, id: "consent/" + kind + string(c.ID[:]), kind: pb.ItemKind_CONSENT, payload: payload, from: remote,
		deps: []identity.AttestationID{att.ID}}}
	results, err := r.store.put(ctx, items)
	if err != nil {
		s, text := statusText(err)
		return &pb.AddResponse{Status: s, Text: text}
	}
	ds, err := r.deliveries(ctx, items, results)
	if err != nil {
		s, text := statusText(err)
		return &pb.AddResponse{Status: s, Text: text}
	}
	res := &pb.AddResult{RequestId: c.ID[:], To: []byte(c.To), Delivery: ds[0]}
	switch results[0].outcome {
	case putOverQuota:
		res.Reason, res.Detail = pb.Reason_MAILBOX_FULL, fullDetail(results[0])
		r.trace.mailboxFull(results[0].fullRoom())
		return &pb.AddResponse{Status: pb.Status_QUOTA_EXCEEDED, Text: "their mailbox is full", Results: []*pb.AddResult{res}}
	case putWithdrawn:
		res.Reason = pb.Reason_REVOKED
		return &pb.AddResponse{Status: pb.Status_REFUSED, Text: "the friendship was revoked", Results: []*pb.AddResult{res}}
	case putStored:
		r.trace.itemStored("consent")
	}
	r.trace.addOutcome("consent")
	return &pb.AddResponse{Status: pb.Status_OK, Results: []*pb.AddResult{res}}
}

// ---- presence

func (r *Relay) handlePresence(st network.Stream) {
	r.serve(st, protocols.MaxPresenceMessage, func(ctx context.Context, remote peer.ID, frame []byte, readErr error) proto.Message {
		return r.presence(ctx, remote, frame, readErr)
	})
}

// presence answers which peers are online and how to reach them, to
// askers who prove they may know: a friendship with the peer, or an
// introduction between them.
//
// With want_profiles, each answer carries the peer's newest signed profile
// (which names their home relays): the one stored here for a user
// registered here, else the newer of that and the one in the relays' DHT.
func (r *Relay) presence(ctx context.Context, remote peer.ID, frame []byte, readErr error) *pb.PresenceResponse {
	if readErr != nil {
		s, text := statusText(readErr)
		return &pb.PresenceResponse{Status: s, Text: text}
	}
	if !r.limits.allow("presence", remote, r.cfg.PresenceRate) {
		return &pb.PresenceResponse{Status: pb.Status_RATE_LIMITED, Text: "too many presence queries; retry later"}
	}
	q, ids, err := protocols.DecodePresenceQuery(frame)
	if err != nil {
		s, text := statusText(err)
		return &pb.PresenceResponse{Status: s, Text: text}
	}
	now := r.clock()
	resp := &pb.PresenceResponse{Status: pb.Status_OK}
	var lookups []int // entries whose profiles are looked up in the DHT
	for i, ask := range q.Asks {
		p := ids[i]
		e := &pb.PresenceEntry{Peer: []byte(p)}
		resp.Entries = append(resp.Entries, e)
		if err := r.mayKnow(remote, p, ask, now); err != nil {
			e.Refused = protocols.WireReason(identity.ReasonOf(err))
			r.trace.presenceAsk("refused")
			continue
		}
		online, reg, known := r.sessions.lookup(p)
		e.Online = online
		if known {
			e.LastSeen = reg.lastSeen.Unix()
		}
		if online {
			for _, a := range r.currentAddrs(p, reg.addrs) {
				e.Addrs = append(e.Addrs, a.Bytes())
			}
			r.trace.presenceAsk("online")
		} else {
			r.trace.presenceAsk("offline")
		}
		if q.WantProfiles {
			if prof := r.store.profile(p); prof != nil {
				e.Profile = prof.Raw
			}
			if r.routing != nil && !r.sessions.registered(p) {
				lookups = append(lookups, i)
			}
		}
	}
	if len(lookups) > 0 {
		r.lookupProfiles(ctx, resp.Entries, lookups)
	}
	budget := profileBudget
	for _, e := range resp.Entries {
		if len(e.Profile) > budget {
			e.Profile = nil // the asker asks again, for fewer peers
		}
		budget -= len(e.Profile)
	}
	return resp
}

// profileBudget bounds the profile bytes in one presence response, well
// inside protocols.MaxResponseMessage.
const profileBudget = 40 << 10

// lookupProfiles fills the profiles of entries[idx] from the DHT where it
// holds a newer one, a few lookups at a time, within LookupTimeout.
func (r *Relay) lookupProfiles(ctx context.Context, entries []*pb.PresenceEntry, idx []int) {
	ctx, cancel := context.WithTimeout(ctx, r.cfg.DHT.LookupTimeout.D())
	defer cancel()
	sem := make(chan struct{}, 8)
	var wg sync.WaitGroup
	for _, i := range idx {
		e := entries[i]
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			found := r.routing.lookup(ctx, peer.ID(e.Peer))
			if found == nil {
				return
			}
			if local := r.store.profile(found.Owner); local == nil || found.Seq > local.Seq {
				e.Profile = found.Raw
			}
		}()
	}
	wg.Wait()
}

// currentAddrs returns p's addresses as p last signed them: the peer
// record identify brought (libp2p pushes a new one when a node's
// addresses change: a circuit reservation taken after the login, a new
// network), else the one the login carried.
func (r *Relay) currentAddrs(p peer.ID, atLogin []ma.Multiaddr) []ma.Multiaddr {
	cab, ok := peerstore.GetCertifiedAddrBook(r.h.Peerstore())
	if !ok {
		return atLogin
	}
	env := cab.GetPeerRecord(p)
	if env == nil {
		return atLogin
	}
	rec, err := env.Record()
	if err != nil {
		return atLogin
	}
	pr, ok := rec.(*peer.PeerRecord)
	if !ok || pr.PeerID != p || len(pr.Addrs) == 0 {
		return atLogin
	}
	return pr.Addrs[:min(len(pr.Addrs), maxLoginAddrs)]
}

func (r *Relay) mayKnow(asker, p peer.ID, ask *pb.PresenceAsk, now time.Time) error {
	if asker == p {
		return nil
	}
	if len(ask.Attestation) > 0 {
		_, err := r.verifier.Friendship(ask.Attestation, asker, p, now)
		return err
	}
	if len(ask.Introduction) > 0 {
		in, err := r.verifier.Introduction(ask.Introduction, now)
		if err != nil {
			return err
		}
		if (in.Recipient == asker && in.Subject == p) || (in.Recipient == p && in.Subject == asker) {
			return nil
		}
		return &identity.VerifyError{Record: "introduction", Reason: identity.ReasonWrongPair, Detail: "it is not between the asker and the peer"}
	}
	return &identity.VerifyError{Record: "presence", Reason: identity.ReasonMissing, Detail: "no friendship or introduction given"}
}

// ---- revoke

func (r *Relay) handleRevoke(st network.Stream) {
	r.serve(st, protocols.MaxRevokeMessage, func(ctx context.Context, remote peer.ID, frame []byte, readErr error) proto.Message {
		return r.acceptRevocations(ctx, remote, frame, readErr)
	})
}

func (r *Relay) acceptRevocations(ctx context.Context, remote peer.ID, frame []byte, readErr error) *pb.RevokeResponse {
	if readErr != nil {
		s, text := statusText(readErr)
		return &pb.RevokeResponse{Status: s, Text: text}
	}
	if !r.limits.allow("revoke", remote, r.cfg.RevokeRate) {
		return &pb.RevokeResponse{Status: pb.Status_RATE_LIMITED, Text: "too many revocations; retry later"}
	}
	m, err := protocols.DecodeRevokeRequest(frame)
	if err != nil {
		s, text := statusText(err)
		return &pb.RevokeResponse{Status: s, Text: text}
	}
	resp := &pb.RevokeResponse{Status: pb.Status_OK}
	ok := 0
	for _, raw := range m.Revocations {
		rev, err := r.verifier.Revocation(raw)
		if err != nil {
			r.trace.revocation("node", "invalid")
			resp.Failures = append(resp.Failures, protocols.NewFailure("", pb.Role_SHARER, err).ToWire())
			continue
		}
		if err := r.applyRevocation(ctx, rev, "node"); err != nil {
			s, text := statusText(err)
			return &pb.RevokeResponse{Status: s, Text: text}
		}
		ok++
	}
	if ok == 0 {
		resp.Status, resp.Text = pb.Status_REFUSED, "no revocation verified"
	}
	return resp
}

// applyRevocation stores a verified revocation, withdraws what rests on
// it, and gossips it to other relays if it was new.
func (r *Relay) applyRevocation(ctx context.Context, rev *identity.Revocation, source string) error {
	fresh, err := r.store.revoke(ctx, rev)
	if err != nil {
		return err
	}
	if !fresh {
		r.trace.revocation(source, "known")
		return nil
	}
	r.trace.revocation(source, "new")
	r.log.Info("revocation applied", "attestation", rev.AttestationID.Short(), "revoker", rev.Revoker.String(), "source", source)
	if source == "node" && r.gossip != nil {
		r.gossip.publish(rev.Raw)
	}
	return nil
}
