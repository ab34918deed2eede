package rendezvous

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	ds "github.com/ipfs/go-datastore"
	"github.com/libp2p/go-libp2p/core/peer"
	"google.golang.org/protobuf/proto"

	"github.com/kithnet/kith/identity"
	protopb "github.com/kithnet/kith/protocols/pb"
	"github.com/kithnet/kith/rendezvous/pb"
)

// revoke records a verified revocation and withdraws what rested on it.
// It reports whether the revocation was new. One operation records it,
// withdraws the items still waiting and marks the revocation as being
// withdrawn; from then on nothing new can rest on the attestation, so the
// delivered items it withdraws are a fixed set, read outside the store's
// lock and withdrawn a chunk per operation (see withdrawDelivered): a
// revocation by a busy sender does not stop every other commit. A relay
// that stops before the last chunk resumes at its next start.
func (s *store) revoke(ctx context.Context, r *identity.Revocation) (bool, error) {
	fresh, unfinished := false, false
	err := s.do(ctx, func(tx *txn) error {
		if s.revoked.Revoked(r.AttestationID) {
			// Heard again while (or after) its withdrawal failed halfway:
			// finish it now rather than at the next start.
			_, err := tx.get(ctx, withdrawingKey(r.AttestationID))
			unfinished = err == nil
			return nil
		}
		fresh = true
		s.revoked.add(r)
		tx.add(mutation{key: revokedKey(r.AttestationID), value: r.Raw},
			mutation{key: withdrawingKey(r.AttestationID), value: r.Raw})
		touched, muts := s.mb.withdraw(r, tx.now, nil)
		tx.add(muts...)
		tx.touched = append(tx.touched, touched...)
		// Tell the other friend, if this is their relay: the friendship
		// is over. (Every relay hears the revocation; only the one that
		// knows the other friend's profile keeps a notice for them.)
		if s.profiles[r.Other] != nil {
			payload := mustMarshal(&protopb.Withdrawal{ItemId: r.AttestationID[:], Revocation: r.Raw})
			tx.put(newItem{recipient: r.Other, id: withdrawalID("friendship", r.AttestationID),
				kind: protopb.ItemKind_WITHDRAWAL, payload: payload, from: r.Revoker})
		}
		return nil
	})
	if err != nil || !(fresh || unfinished) {
		return fresh, err
	}
	return fresh, s.withdrawDelivered(ctx, r)
}

// withdrawDelivered withdraws the delivered items resting on rev's
// attestation (a withdrawal notice each), then clears the mark revoke
// left. It may run again for the same revocation (after a restart):
// what it already withdrew says so in its record and is skipped.
func (s *store) withdrawDelivered(ctx context.Context, rev *identity.Revocation) error {
	cands, err := s.storedDeps(ctx, rev)
	if err != nil {
		return err
	}
	for chunk := range slices.Chunk(cands, withdrawChunk) {
		err := s.do(ctx, func(tx *txn) error {
			for i := range chunk {
				d := &chunk[i]
				d.rec, d.found = idRecord{}, false
				if d.recipient == "" {
					continue // an unreadable index entry: withdraw deletes it
				}
				v, err := tx.get(ctx, mboxIDKey(d.recipient, d.id))
				switch {
				case err == nil:
					var rec pb.ItemRecord
					if proto.Unmarshal(v, &rec) == nil {
						d.rec, d.found = idRecordOf(&rec), true
					}
				case !errors.Is(err, ds.ErrNotFound):
					return fmt.Errorf("rendezvous: read a delivered item's record: %w", err)
				}
			}
			touched, muts := s.mb.withdraw(rev, tx.now, chunk)
			tx.add(muts...)
			tx.touched = append(tx.touched, touched...)
			return nil
		})
		if err != nil {
			return err
		}
	}
	return s.do(ctx, func(tx *txn) error {
		tx.add(mutation{key: withdrawingKey(rev.AttestationID), del: true})
		return nil
	})
}

// storedDeps lists from the datastore the delivered items that may rest
// on rev's attestation: those indexed under it, and those from or to
// either friend (see storedDep). Their records are read when each chunk
// is withdrawn.
func (s *store) storedDeps(ctx context.Context, rev *identity.Revocation) ([]storedDep, error) {
	type ref struct {
		r  peer.ID
		id string
	}
	byRef := map[ref]int{}
	var out []storedDep
	note := func(r peer.ID, id string, keys ...ds.Key) {
		k := ref{r, id}
		i, ok := byRef[k]
		if !ok {
			i = len(out)
			byRef[k] = i
			out = append(out, storedDep{recipient: r, id: id})
		}
		out[i].keys = append(out[i].keys, keys...)
	}
	// Index entries: <prefix><recipient>/<id>.
	indexed := func(prefix string) error {
		return s.each(ctx, prefix, func(k string, _ []byte) {
			parts := splitKey(k, prefix)
			var r peer.ID
			var id string
			err := fmt.Errorf("bad key")
			if len(parts) == 2 {
				if r, err = parsePeerText(parts[0]); err == nil {
					id, err = parseHexID(parts[1])
				}
			}
			if err != nil {
				out = append(out, storedDep{keys: []ds.Key{ds.RawKey(k)}}) // withdraw deletes it
				return
			}
			note(r, id, ds.RawKey(k))
		})
	}
	friends := []peer.ID{rev.Revoker}
	if rev.Other != "" && rev.Other != rev.Revoker {
		friends = append(friends, rev.Other)
	}
	if err := indexed(mboxDepPrefix(rev.AttestationID)); err != nil {
		return nil, fmt.Errorf("rendezvous: read items resting on %s: %w", rev.AttestationID, err)
	}
	for _, p := range friends {
		if err := indexed(mboxFromPrefix(p)); err != nil {
			return nil, fmt.Errorf("rendezvous: read items from %s: %w", p, err)
		}
		// Items to p: its mailbox's records of delivered items that rest
		// on something.
		prefix := prefixMboxID + peerText(p) + "/"
		err := s.each(ctx, prefix, func(k string, v []byte) {
			id, err := parseHexID(strings.TrimPrefix(k, prefix))
			var rec pb.ItemRecord
			if err != nil || proto.Unmarshal(v, &rec) != nil || rec.State != pb.ItemState_ACKED || len(rec.Deps) == 0 {
				return
			}
			note(p, id)
		})
		if err != nil {
			return nil, fmt.Errorf("rendezvous: read items to %s: %w", p, err)
		}
	}
	return out, nil
}

// withdrawChunk is how many delivered items one operation of
// withdrawDelivered handles.
const withdrawChunk = 512
