package rendezvous

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/kithnet/kith/identity"
	"github.com/kithnet/kith/protocols"
	"github.com/kithnet/kith/protocols/pb"
)

// Anti-entropy for revocations (protocols.RevSyncProtocol): gossip spreads
// a revocation once, when a relay hears it from a node, so a relay that
// was down then, or lost the message, would never enforce it. Relays
// therefore reconcile their revocation sets when they connect and every
// RevocationSync: the sets are compared range by range (a range is every
// id with a given prefix, summarised by count and sum, see rangeSum), and
// only the ranges that differ are opened further, so a sync costs in
// proportion to the difference, not to the sets. The decisions are the
// reconciler's, a function of the set and the step received; the stream
// code is around it.

// Limits of a sync.
const (
	// syncListMax: a range holding at most this many ids is answered with
	// the ids themselves, not with its 256 sub-ranges.
	syncListMax = 64
	// syncMaxRevocations bounds the revocations in one step (about 400
	// bytes each); what is left is sent in the next sync.
	syncMaxRevocations = 2000
	// syncMaxRounds bounds an exchange: a prefix grows one byte a round,
	// and ids are 32 bytes.
	syncMaxRounds = 40
	// syncMaxFetch bounds the ids asked for in one step.
	syncMaxFetch = 4096
	// syncMaxOpen bounds the ranges opened into 256 sub-ranges in one
	// step; the others go back as they are, with this side's summary, for
	// the other side to open (or list) in its turn.
	syncMaxOpen = 32
	// syncMaxRanges bounds the ranges in one step.
	syncMaxRanges = 256*syncMaxOpen + 256
)

// reconciler answers the steps of a sync over one relay's set.
type reconciler struct {
	set *revocationSet
	// get returns the stored revocation of id.
	get func(id identity.AttestationID) ([]byte, bool)
}

// first is the initiator's opening step: its whole set as one range,
// which is all that crosses when the two sets are the same.
func (rc *reconciler) first() *pb.RevSyncStep {
	return &pb.RevSyncStep{Ranges: []*pb.RevSyncRange{wireRange(nil, total(rc.set.roots()))}}
}

// total sums the 256 one-byte ranges into the whole set's.
func total(roots [256]rangeSum) rangeSum {
	var t rangeSum
	for _, r := range roots {
		t.count += r.count
		var carry uint64
		for i := 3; i >= 0; i-- {
			a := binary.BigEndian.Uint64(t.sum[i*8:])
			b := binary.BigEndian.Uint64(r.sum[i*8:])
			v := a + b + carry
			carry = boolBit(v < a || (carry == 1 && v == a))
			binary.BigEndian.PutUint64(t.sum[i*8:], v)
		}
	}
	return t
}

func wireRange(prefix []byte, s rangeSum) *pb.RevSyncRange {
	return &pb.RevSyncRange{Prefix: append([]byte(nil), prefix...), Count: s.count, Fingerprint: s.fingerprint()}
}

// answer is what this side says to in. It returns the step to send and the
// revocations in received, unverified: the caller verifies and applies
// them.
func (rc *reconciler) answer(in *pb.RevSyncStep) (out *pb.RevSyncStep, received [][]byte, err error) {
	if err := checkStep(in); err != nil {
		return nil, nil, err
	}
	out = &pb.RevSyncStep{}
	// Every range and list asked about, in one pass over the set; the
	// whole set's range is summarised from the one-byte ranges instead.
	roots := rc.set.roots()
	var prefixes [][]byte
	for _, r := range in.Ranges {
		prefixes = append(prefixes, r.Prefix)
	}
	for _, l := range in.Lists {
		prefixes = append(prefixes, l.Prefix)
	}
	mine := rc.set.collect(prefixes)
	sent := 0
	send := func(id identity.AttestationID) {
		if sent >= syncMaxRevocations {
			return
		}
		if raw, ok := rc.get(id); ok {
			out.Revocations = append(out.Revocations, raw)
			sent++
		}
	}
	opened := 0
	for i, r := range in.Ranges {
		own := sumOf(mine[i])
		if len(r.Prefix) == 0 {
			own = total(roots)
			if own.count > syncListMax {
				if own.count != r.Count || !bytes.Equal(own.fingerprint(), r.Fingerprint) {
					for b := range 256 {
						out.Ranges = append(out.Ranges, wireRange([]byte{byte(b)}, roots[b]))
					}
				}
				continue
			}
		}
		switch {
		case own.count == r.Count && bytes.Equal(own.fingerprint(), r.Fingerprint):
		case own.count <= syncListMax || len(r.Prefix) >= len(identity.AttestationID{}):
			out.Lists = append(out.Lists, wireList(r.Prefix, mine[i]))
		case opened < syncMaxOpen:
			opened++
			out.Ranges = append(out.Ranges, subRanges(r.Prefix, mine[i])...)
		default:
			out.Ranges = append(out.Ranges, wireRange(r.Prefix, own))
		}
	}
	for j, l := range in.Lists {
		own := mine[len(in.Ranges)+j]
		theirs := make(map[identity.AttestationID]bool, len(l.Ids))
		for _, b := range l.Ids {
			var id identity.AttestationID
			copy(id[:], b)
			theirs[id] = true
		}
		for _, id := range own {
			if !theirs[id] {
				send(id) // they lack it
			}
			delete(theirs, id)
		}
		for id := range theirs {
			if len(out.Fetch) < syncMaxFetch {
				out.Fetch = append(out.Fetch, id[:]) // I lack it
			}
		}
	}
	for _, b := range in.Fetch {
		var id identity.AttestationID
		copy(id[:], b)
		send(id)
	}
	return out, in.Revocations, nil
}

func wireList(prefix []byte, ids []identity.AttestationID) *pb.RevSyncList {
	l := &pb.RevSyncList{Prefix: append([]byte(nil), prefix...)}
	for _, id := range ids {
		l.Ids = append(l.Ids, append([]byte(nil), id[:]...))
	}
	return l
}

// subRanges summarises ids (all starting with prefix) by the next byte.
func subRanges(prefix []byte, ids []identity.AttestationID) []*pb.RevSyncRange {
	var sums [256]rangeSum
	for _, id := range ids {
		sums[id[len(prefix)]].add(id, 1)
	}
	out := make([]*pb.RevSyncRange, 256)
	for b := range 256 {
		out[b] = wireRange(append(append([]byte(nil), prefix...), byte(b)), sums[b])
	}
	return out
}

// checkStep refuses a step no honest relay sends.
func checkStep(m *pb.RevSyncStep) error {
	const idLen = len(identity.AttestationID{})
	if len(m.Ranges) > syncMaxRanges || len(m.Lists) > syncMaxRanges || len(m.Fetch) > syncMaxFetch || len(m.Revocations) > syncMaxRevocations {
		return protocols.Errorf(pb.Status_TOO_LARGE, "a sync step of %d ranges, %d lists, %d fetches, %d revocations",
			len(m.Ranges), len(m.Lists), len(m.Fetch), len(m.Revocations))
	}
	for _, r := range m.Ranges {
		if len(r.Prefix) > idLen || len(r.Fingerprint) != 16 {
			return protocols.Errorf(pb.Status_BAD_REQUEST, "a sync range with a prefix of %d bytes and a fingerprint of %d", len(r.Prefix), len(r.Fingerprint))
		}
	}
	for _, l := range m.Lists {
		if len(l.Prefix) > idLen || len(l.Ids) > 4*syncListMax {
			return protocols.Errorf(pb.Status_BAD_REQUEST, "a sync list of %d ids under a prefix of %d bytes", len(l.Ids), len(l.Prefix))
		}
		for _, id := range l.Ids {
			if len(id) != idLen || !bytes.HasPrefix(id, l.Prefix) {
				return protocols.Errorf(pb.Status_BAD_REQUEST, "a sync list holds an id outside its range")
			}
		}
	}
	for _, id := range m.Fetch {
		if len(id) != idLen {
			return protocols.Errorf(pb.Status_BAD_REQUEST, "a fetch of a %d-byte id", len(id))
		}
	}
	return nil
}

func emptyStep(m *pb.RevSyncStep) bool {
	return len(m.Ranges) == 0 && len(m.Lists) == 0 && len(m.Fetch) == 0 && len(m.Revocations) == 0
}

// ---- the stream

// syncResult is what one sync did.
type syncResult struct {
	learnt, sent, rounds int
}

// applySynced verifies and applies revocations received in a sync, and
// returns how many were new here.
func (r *Relay) applySynced(ctx context.Context, raws [][]byte) int {
	now := r.clock()
	learnt := 0
	for _, raw := range raws {
		rev, err := r.verifier.Revocation(raw)
		if err != nil {
			r.trace.revocation("sync", "invalid")
			continue
		}
		if !now.Before(rev.AttestationExpires.Add(revocationGrace)) {
			continue // the attestation has expired: nothing to enforce
		}
		if r.store.revoked.Revoked(rev.AttestationID) {
			continue
		}
		if err := r.applyRevocation(ctx, rev, "sync"); err != nil {
			r.log.Warn("cannot apply a synced revocation", "err", err)
			continue
		}
		learnt++
	}
	return learnt
}

// syncWith reconciles this relay's revocations with relay p's.
func (r *Relay) syncWith(ctx context.Context, p peer.ID) (syncResult, error) {
	var res syncResult
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	s, err := r.h.NewStream(ctx, p, protocols.RevSyncProtocol)
	if err != nil {
		return res, fmt.Errorf("open revocation sync to %s: %w", p, err)
	}
	defer s.Close()
	rd := protocols.NewReader(s, protocols.MaxRevSyncMessage)
	rc := r.reconciler()
	step := rc.first()
	for ; res.rounds < syncMaxRounds && !emptyStep(step); res.rounds++ {
		s.SetDeadline(time.Now().Add(protocols.StreamDeadline))
		res.sent += len(step.Revocations)
		if err := protocols.WriteMsg(s, step); err != nil {
			s.Reset()
			return res, err
		}
		var reply pb.RevSyncStep
		if err := rd.ReadMsg(&reply); err != nil {
			s.Reset()
			return res, err
		}
		var received [][]byte
		if step, received, err = rc.answer(&reply); err != nil {
			s.Reset()
			return res, err
		}
		res.learnt += r.applySynced(ctx, received)
	}
	return res, nil
}

// handleRevSync answers another relay's sync, step by step, until it
// closes the stream.
func (r *Relay) handleRevSync(st network.Stream) {
	if err := st.Scope().SetService(ServiceName); err != nil {
		st.Reset()
		return
	}
	if err := st.Scope().ReserveMemory(protocols.MaxRevSyncMessage, network.ReservationPriorityAlways); err != nil {
		st.Reset()
		return
	}
	defer st.Scope().ReleaseMemory(protocols.MaxRevSyncMessage)
	remote := st.Conn().RemotePeer()
	if !r.peers.has(remote) || !r.limits.allow("revsync", remote, r.cfg.RevSyncRate) {
		st.Reset()
		return
	}
	rd := protocols.NewReader(st, protocols.MaxRevSyncMessage)
	rc := r.reconciler()
	for range syncMaxRounds {
		st.SetDeadline(time.Now().Add(protocols.StreamDeadline))
		var in pb.RevSyncStep
		if err := rd.ReadMsg(&in); err != nil {
			if errors.Is(err, io.EOF) {
				st.Close()
			} else {
				st.Reset()
			}
			return
		}
		out, received, err := rc.answer(&in)
		if err != nil {
			r.log.Debug("refusing a revocation sync step", "peer", remote, "err", err)
			st.Reset()
			return
		}
		r.applySynced(r.ctx, received)
		if err := protocols.WriteMsg(st, out); err != nil {
			st.Reset()
			return
		}
	}
	st.Reset()
}

// relayPeers are the relays this one reconciles with: the configured
// ones and those found through the DHT.
type relayPeers struct {
	mu  sync.Mutex
	set map[peer.ID]bool
}

func (rp *relayPeers) add(p peer.ID) {
	rp.mu.Lock()
	defer rp.mu.Unlock()
	if rp.set == nil {
		rp.set = map[peer.ID]bool{}
	}
	rp.set[p] = true
}

func (rp *relayPeers) has(p peer.ID) bool {
	rp.mu.Lock()
	defer rp.mu.Unlock()
	return rp.set[p]
}

func (rp *relayPeers) list() []peer.ID {
	rp.mu.Lock()
	defer rp.mu.Unlock()
	out := make([]peer.ID, 0, len(rp.set))
	for p := range rp.set {
		out = append(out, p)
	}
	return out
}

// syncLoop reconciles revocations with relay peers: with one as soon as
// it connects (a relay that was down learns what it missed when it is
// back), and with every connected one each RevocationSync.
func (r *Relay) syncLoop(connected <-chan peer.ID) {
	defer r.wg.Done()
	t := time.NewTicker(r.cfg.RevocationSync.D())
	defer t.Stop()
	sync := func(p peer.ID) {
		res, err := r.syncWith(r.ctx, p)
		switch {
		case err != nil && r.ctx.Err() == nil:
			r.log.Debug("revocation sync failed", "peer", p, "err", err)
		case res.learnt > 0 || res.sent > 0:
			r.log.Info("revocations reconciled", "peer", p, "learnt", res.learnt, "sent", res.sent, "rounds", res.rounds)
		}
	}
	for {
		select {
		case <-r.ctx.Done():
			return
		case p := <-connected:
			sync(p)
		case <-t.C:
			for _, p := range r.peers.list() {
				if r.h.Network().Connectedness(p) == network.Connected {
					sync(p)
				}
			}
		}
	}
}

// watchRelayPeers tells syncLoop of every connection a relay peer opens.
func (r *Relay) watchRelayPeers() (<-chan peer.ID, *network.NotifyBundle) {
	ch := make(chan peer.ID, 64)
	nb := &network.NotifyBundle{ConnectedF: func(_ network.Network, c network.Conn) {
		if p := c.RemotePeer(); r.peers.has(p) {
			select {
			case ch <- p:
			default: // a sync is pending already; the periodic one covers the rest
			}
		}
	}}
	r.h.Network().Notify(nb)
	return ch, nb
}

func (r *Relay) reconciler() *reconciler {
	return &reconciler{set: r.store.revoked, get: func(id identity.AttestationID) ([]byte, bool) {
		v, err := r.store.ds.Get(r.ctx, revokedKey(id))
		return v, err == nil
	}}
}
