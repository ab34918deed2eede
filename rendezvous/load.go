package rendezvous

import (
	"context"
	"errors"
	"fmt"
	"strings"

	ds "github.com/ipfs/go-datastore"
	"github.com/ipfs/go-datastore/query"
	"github.com/libp2p/go-libp2p/core/peer"
	"google.golang.org/protobuf/proto"

	"github.com/kithnet/kith/identity"
	protopb "github.com/kithnet/kith/protocols/pb"
	"github.com/kithnet/kith/rendezvous/pb"
)

// load rebuilds the model from the datastore.
func (s *store) load(ctx context.Context) error {
	verifier := identity.NewVerifier(identity.WithCacheSize(0))
	mb := newMailboxes(s.mb.quota, s.mb.ttl, s.revoked.Revoked)
	mb.recentTTL = s.mb.recentTTL
	mb.budget = s.mb.budget
	layout, err := s.ds.Get(ctx, layoutKey)
	if err != nil && !errors.Is(err, ds.ErrNotFound) {
		return fmt.Errorf("rendezvous: load layout: %w", err)
	}
	if len(layout) > 0 && string(layout) != layoutVersion {
		return fmt.Errorf("rendezvous: the datastore was written by a newer relay (key layout %q; this relay reads %q)", layout, layoutVersion)
	}
	// A datastore written before layout 2 kept delivered items'
	// dependencies only in their id records: index them once.
	migrate := len(layout) == 0
	var migration []mutation
	var withdrawing []*identity.Revocation
	now := s.clock()
	scan := func(prefix string, keysOnly bool, f func(rest []string, value []byte) error) error {
		res, err := s.ds.Query(ctx, query.Query{Prefix: prefix, KeysOnly: keysOnly})
		if err != nil {
			return fmt.Errorf("rendezvous: load %s: %w", prefix, err)
		}
		defer res.Close()
		for r := range res.Next() {
			if r.Error != nil {
				return fmt.Errorf("rendezvous: load %s: %w", prefix, r.Error)
			}
			if err := f(splitKey(r.Key, prefix), r.Value); err != nil {
				// A record we cannot read is logged and skipped: one bad
				// record must not keep the relay from serving everyone else.
				s.log.Warn("skipping unreadable record", "key", r.Key, "err", err)
			}
		}
		return nil
	}
	// Id records are read only to index an older datastore: pending items'
	// records are rebuilt from the items, and settled ones stay on disk, so
	// a relay's start does not grow with its history.
	migrateScan := func(f func(k []string, v []byte) error) error {
		if !migrate {
			return nil
		}
		return scan(prefixMboxID, false, f)
	}
	// The replay filter is rebuilt from the share records, counted first
	// so that it is sized without holding every id (two passes over the
	// keys, on pebble without the query machinery).
	shareKeys := func(f func(key string)) error {
		return s.each(ctx, prefixShares, func(k string, _ []byte) { f(k) })
	}
	shares := 0
	if err := shareKeys(func(string) { shares++ }); err != nil {
		return fmt.Errorf("rendezvous: load %s: %w", prefixShares, err)
	}
	rebuild := s.seen.begin(2 * shares)
	err = errors.Join(
		shareKeys(func(k string) {
			id, err := identity.ParseShareID(strings.TrimPrefix(k, prefixShares))
			if err != nil {
				s.log.Warn("skipping unreadable record", "key", k, "err", err)
				return
			}
			s.seen.include(rebuild, id)
		}),
		scan(prefixRevoked, false, func(_ []string, v []byte) error {
			r, err := verifier.Revocation(v)
			if err != nil {
				return err
			}
			s.revoked.Add(r)
			return nil
		}),
		scan(prefixWithdraw, false, func(_ []string, v []byte) error {
			r, err := verifier.Revocation(v)
			if err != nil {
				return err
			}
			withdrawing = append(withdrawing, r)
			return nil
		}),
		scan(prefixProfiles, false, func(_ []string, v []byte) error {
			p, err := verifier.Profile(v, s.clock().Add(identity.DefaultClockSkew))
			if err != nil {
				return err
			}
			s.profiles[p.Owner] = p
			return nil
		}),
		scan(prefixMboxMeta, false, func(k []string, v []byte) error {
			r, err := parsePeerText(k[0])
			if err != nil {
				return err
			}
			var meta pb.BoxMeta
			if err := proto.Unmarshal(v, &meta); err != nil {
				return err
			}
			mb.loadMeta(r, &meta)
			return nil
		}),
		scan(prefixMbox, false, func(k []string, v []byte) error {
			if len(k) != 2 {
				return fmt.Errorf("bad key")
			}
			r, err := parsePeerText(k[0])
			if err != nil {
				return err
			}
			seq, err := parseSeq(k[1])
			if err != nil {
				return err
			}
			var st pb.StoredItem
			if err := proto.Unmarshal(v, &st); err != nil {
				return err
			}
			var item protopb.InboxItem
			if err := proto.Unmarshal(st.Item, &item); err != nil {
				return err
			}
			from, _ := peer.IDFromBytes(item.From)
			mb.loadItem(r, seq, len(v), &st, item.Kind, from)
			if migrate {
				// Layout 2 lists a stored item from when it is stored.
				rec, _ := mb.state(r, string(st.Id))
				migration = append(migration, indexEntries(r, string(st.Id), rec)...)
			}
			return nil
		}),
		migrateScan(func(k []string, v []byte) error {
			if len(k) != 2 {
				return fmt.Errorf("bad key")
			}
			r, err := parsePeerText(k[0])
			if err != nil {
				return err
			}
			id, err := parseHexID(k[1])
			if err != nil {
				return err
			}
			var rec pb.ItemRecord
			if err := proto.Unmarshal(v, &rec); err != nil {
				return err
			}
			if rec.State == pb.ItemState_ACKED && now.Unix() < rec.ExpiresAt {
				for _, a := range idRecordOf(&rec).deps {
					if !s.revoked.Revoked(a) {
						migration = append(migration, mutation{key: mboxDepKey(a, r, id), value: expiryValue(rec.ExpiresAt)})
					}
				}
			}
			return nil
		}),
	)
	if err != nil {
		s.seen.abort(rebuild)
		return err
	}
	if migrate {
		migration = append(migration, mutation{key: layoutKey, value: []byte(layoutVersion)})
		if err := s.write(migration, true); err != nil {
			s.seen.abort(rebuild)
			return fmt.Errorf("rendezvous: index delivered items: %w", err)
		}
		if len(migration) > 1 {
			s.log.Info("indexed delivered items by attestation", "entries", len(migration)-1)
		}
	}
	mb.finishLoad()
	s.mb = mb
	s.withdrawing = withdrawing
	s.seen.finish(rebuild)
	return nil
}
