package rendezvous

import (
	"context"
	"slices"
	"strings"

	ds "github.com/ipfs/go-datastore"
	"github.com/ipfs/go-datastore/query"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/kithnet/kith/identity"
	"github.com/kithnet/kith/rendezvous/pb"
)

// expire drops expired items and records.
func (s *store) expire(ctx context.Context) error {
	return s.do(ctx, func(tx *txn) error {
		n, muts := s.mb.expire(tx.now)
		tx.add(muts...)
		if n > 0 {
			s.hooks.onDrop(n)
		}
		return nil
	})
}

// expireRevocations forgets the revocations whose attestations have
// expired (see revocationSet): in memory, and their records on disk.
func (s *store) expireRevocations(ctx context.Context) error {
	ids := s.revoked.expired(s.clock())
	if len(ids) == 0 {
		return nil
	}
	return s.doLazy(ctx, func(tx *txn) error {
		for _, id := range ids {
			s.revoked.remove(id)
			tx.add(mutation{key: revokedKey(id), del: true})
		}
		return nil
	})
}

// expireShares deletes share records whose seals have expired (a replay
// of them is refused by the seal's own expiry) and rebuilds the replay
// filter from the records that remain, sized for four times as many as the
// old one held (expired ones included: a roomier filter only has fewer
// false positives, and the next rebuild sizes it for what is live). It
// runs hourly and whenever the filter fills; growing fourfold, the scans
// of a growing relay add up to a third of its records again.
func (s *store) expireShares(ctx context.Context) error {
	now := s.clock().Unix()
	var old []ds.Key
	rebuild := s.seen.begin(4 * s.seen.count())
	visit := func(key string, value []byte) {
		id, err := identity.ParseShareID(strings.TrimPrefix(key, prefixShares))
		if err == nil && shareExpiry(value) > now {
			s.seen.include(rebuild, id)
			return
		}
		old = append(old, ds.RawKey(key))
	}
	if err := s.each(ctx, prefixShares, visit); err != nil {
		s.seen.abort(rebuild)
		return err
	}
	s.seen.finish(rebuild)
	return s.deleteShares(ctx, old)
}

// each calls f with every key and value under prefix, in key order, with
// pebble's iterator where it can (the query machinery costs about 7 us a
// record); the value is valid only during the call.
func (s *store) each(ctx context.Context, prefix string, f func(key string, value []byte)) error {
	if sc, ok := s.ds.(orderedScanner); ok {
		return sc.ScanFrom([]byte(prefix), []byte(prefix), func(k, v []byte) bool {
			f(string(k), v)
			return true
		})
	}
	return queryEach(ctx, s.ds, prefix, f)
}

// queryEach calls f with every key and value under prefix.
func queryEach(ctx context.Context, d ds.Datastore, prefix string, f func(key string, value []byte)) error {
	res, err := d.Query(ctx, query.Query{Prefix: prefix})
	if err != nil {
		return err
	}
	defer res.Close()
	for r := range res.Next() {
		if r.Error != nil {
			return r.Error
		}
		f(r.Key, r.Value)
	}
	return nil
}

// shareExpiry reads a ShareRecord's expires_at without decoding the rest
// (the last one, as a decode would); 0 if the record cannot be read.
func shareExpiry(v []byte) int64 {
	var exp int64
	for len(v) > 0 {
		num, typ, n := protowire.ConsumeTag(v)
		if n < 0 {
			return 0
		}
		v = v[n:]
		if num == 3 && typ == protowire.VarintType {
			x, n := protowire.ConsumeVarint(v)
			if n < 0 {
				return 0
			}
			exp = int64(x)
			v = v[n:]
			continue
		}
		n = protowire.ConsumeFieldValue(num, typ, v)
		if n < 0 {
			return 0
		}
		v = v[n:]
	}
	return exp
}

// deleteShares deletes share records.
func (s *store) deleteShares(ctx context.Context, keys []ds.Key) error {
	for chunk := range slices.Chunk(keys, 4096) {
		err := s.do(ctx, func(tx *txn) error {
			for _, k := range chunk {
				tx.add(mutation{key: k, del: true})
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// expireSettled deletes, from the datastore, the id records of settled
// items and the index entries of delivered items that have expired: the
// model no longer holds them, so its expire cannot. It returns how many
// keys it deleted. Each key is checked again when it is deleted, in case it
// was written anew since the scan.
func (s *store) expireSettled(ctx context.Context) (int, error) {
	now := s.clock().Unix()
	expiredRecord := func(v []byte) bool {
		var rec pb.ItemRecord
		if proto.Unmarshal(v, &rec) != nil {
			return true
		}
		return rec.State != pb.ItemState_PENDING && now >= rec.ExpiresAt
	}
	expiredDep := func(v []byte) bool { return now >= parseExpiryValue(v) }
	deleted := 0
	for _, kind := range []struct {
		prefix  string
		expired func([]byte) bool
	}{{prefixMboxID, expiredRecord}, {prefixMboxFrom, expiredDep}, {prefixMboxDep, expiredDep}} {
		var old []ds.Key
		err := s.each(ctx, kind.prefix, func(k string, v []byte) {
			if kind.expired(v) {
				old = append(old, ds.RawKey(k))
			}
		})
		if err != nil {
			return deleted, err
		}
		for chunk := range slices.Chunk(old, 4096) {
			err := s.do(ctx, func(tx *txn) error {
				for _, k := range chunk {
					if v, err := tx.get(ctx, k); err == nil && kind.expired(v) {
						tx.add(mutation{key: k, del: true})
						deleted++
					}
				}
				return nil
			})
			if err != nil {
				return deleted, err
			}
		}
	}
	return deleted, nil
}
