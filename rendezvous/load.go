package rendezvous

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	ds "github.com/ipfs/go-datastore"
	"github.com/ipfs/go-datastore/query"
	"github.com/libp2p/go-libp2p/core/peer"
	"google.golang.org/protobuf/proto"

	"github.com/kithnet/kith/identity"
	protopb "github.com/kithnet/kith/protocols/pb"
	"github.com/kithnet/kith/rendezvous/pb"
)

// A start rebuilds the model from the datastore: one function per key
// prefix, each reading one kind of record into a loader. Only what is
// pending is read: pending items' id records are rebuilt from the items,
// and settled ones stay on disk (the store recalls one when a retry needs
// it), so a relay's start does not grow with its history. A record that
// cannot be read is logged and skipped: one bad record must not keep the
// relay from serving everyone else.

// loader is the state of one start.
type loader struct {
	s           *store
	ctx         context.Context
	verifier    *identity.Verifier // no cache: each record is read once
	now         time.Time
	mb          *mailboxes // the model being rebuilt
	withdrawing []*identity.Revocation
	mig         *migration // nil unless the datastore needs migrating
}

// load rebuilds the model from the datastore.
func (s *store) load(ctx context.Context) error {
	l := &loader{s: s, ctx: ctx, verifier: identity.NewVerifier(identity.WithCacheSize(0)), now: s.clock(),
		mb: newMailboxes(s.mb.quota, s.mb.ttl, s.revoked.Revoked)}
	l.mb.recentTTL = s.mb.recentTTL
	l.mb.budget = s.mb.budget
	mig, err := l.checkLayout()
	if err != nil {
		return err
	}
	l.mig = mig
	rebuild, err := l.shareIDs()
	if err != nil {
		return err
	}
	err = errors.Join(
		l.scan(prefixRevoked, l.revocation),
		l.scan(prefixWithdraw, l.unfinishedWithdrawal),
		l.scan(prefixProfiles, l.profile),
		l.scan(prefixMboxMeta, l.boxMeta),
		l.scan(prefixMbox, l.item),
	)
	if err == nil && l.mig != nil {
		err = l.scan(prefixMboxID, l.mig.idRecord)
	}
	if err == nil && l.mig != nil {
		err = l.mig.finish()
	}
	if err != nil {
		s.seen.abort(rebuild)
		return err
	}
	l.mb.finishLoad()
	s.mb = l.mb
	s.withdrawing = l.withdrawing
	s.seen.finish(rebuild)
	return nil
}

// scan calls f with the rest of each key under prefix (split at "/") and
// its value.
func (l *loader) scan(prefix string, f func(rest []string, value []byte) error) error {
	res, err := l.s.ds.Query(l.ctx, query.Query{Prefix: prefix})
	if err != nil {
		return fmt.Errorf("rendezvous: load %s: %w", prefix, err)
	}
	defer res.Close()
	for r := range res.Next() {
		if r.Error != nil {
			return fmt.Errorf("rendezvous: load %s: %w", prefix, r.Error)
		}
		if err := f(splitKey(r.Key, prefix), r.Value); err != nil {
			l.s.log.Warn("skipping unreadable record", "key", r.Key, "err", err)
		}
	}
	return nil
}

// shareIDs rebuilds the replay filter from the share records: counted
// first, so that it is sized without holding every id (two passes over the
// keys, on pebble without the query machinery).
func (l *loader) shareIDs() (*bloomFilter, error) {
	keys := func(f func(key string)) error {
		return l.s.each(l.ctx, prefixShares, func(k string, _ []byte) { f(k) })
	}
	n := 0
	if err := keys(func(string) { n++ }); err != nil {
		return nil, fmt.Errorf("rendezvous: load %s: %w", prefixShares, err)
	}
	rebuild := l.s.seen.begin(2 * n)
	err := keys(func(k string) {
		id, err := identity.ParseShareID(strings.TrimPrefix(k, prefixShares))
		if err != nil {
			l.s.log.Warn("skipping unreadable record", "key", k, "err", err)
			return
		}
		l.s.seen.include(rebuild, id)
	})
	if err != nil {
		l.s.seen.abort(rebuild)
		return nil, fmt.Errorf("rendezvous: load %s: %w", prefixShares, err)
	}
	return rebuild, nil
}

// revocation loads a revocation the relay applied.
func (l *loader) revocation(_ []string, v []byte) error {
	r, err := l.verifier.Revocation(v)
	if err != nil {
		return err
	}
	l.s.revoked.add(r)
	return nil
}

// unfinishedWithdrawal loads a revocation whose withdrawal of delivered
// items a stopped relay had not finished; the start finishes it.
func (l *loader) unfinishedWithdrawal(_ []string, v []byte) error {
	r, err := l.verifier.Revocation(v)
	if err != nil {
		return err
	}
	l.withdrawing = append(l.withdrawing, r)
	return nil
}

// profile loads a user's signed profile.
func (l *loader) profile(_ []string, v []byte) error {
	p, err := l.verifier.Profile(v, l.now.Add(identity.DefaultClockSkew))
	if err != nil {
		return err
	}
	l.s.profiles[p.Owner] = p
	return nil
}

// boxMeta loads a mailbox's next seq.
func (l *loader) boxMeta(k []string, v []byte) error {
	r, err := parsePeerText(k[0])
	if err != nil {
		return err
	}
	var meta pb.BoxMeta
	if err := proto.Unmarshal(v, &meta); err != nil {
		return err
	}
	l.mb.loadMeta(r, &meta)
	return nil
}

// item loads a pending item, and its id record and dependencies with it.
func (l *loader) item(k []string, v []byte) error {
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
	l.mb.loadItem(r, seq, len(v), &st, item.Kind, from)
	if l.mig != nil {
		l.mig.pendingItem(r, string(st.Id))
	}
	return nil
}

// checkLayout refuses a datastore written by a newer relay, and returns
// the migration an older one needs (nil if none).
func (l *loader) checkLayout() (*migration, error) {
	layout, err := l.s.ds.Get(l.ctx, layoutKey)
	if err != nil && !errors.Is(err, ds.ErrNotFound) {
		return nil, fmt.Errorf("rendezvous: load layout: %w", err)
	}
	if len(layout) > 0 && string(layout) != layoutVersion {
		return nil, fmt.Errorf("rendezvous: the datastore was written by a newer relay (key layout %q; this relay reads %q)", layout, layoutVersion)
	}
	if len(layout) == 0 {
		return &migration{l: l}, nil
	}
	return nil, nil
}
