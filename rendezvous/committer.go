package rendezvous

import (
	"context"
	"fmt"
	"time"

	ds "github.com/ipfs/go-datastore"
)

func (s *store) run() {
	defer close(s.done)
	for {
		var first *op
		select {
		case first = <-s.ops:
		case <-s.quit:
			// Finish what was already queued, then stop.
			for {
				select {
				case o := <-s.ops:
					s.commit([]*op{o})
				default:
					return
				}
			}
		}
		group := []*op{first}
	drain:
		for len(group) < maxGroup {
			select {
			case o := <-s.ops:
				group = append(group, o)
			default:
				break drain
			}
		}
		s.commit(group)
	}
}

func (s *store) commit(group []*op) {
	tx := &txn{s: s, now: s.clock(), pending: map[ds.Key]*mutation{}}
	s.mu.Lock()
	for _, o := range group {
		tx.cur = o
		o.err = o.apply(tx)
	}
	s.mu.Unlock()
	if len(tx.muts) > 0 {
		start := time.Now()
		lazy := true
		for _, o := range group {
			lazy = lazy && o.lazy
		}
		err := s.write(tx.muts, !lazy)
		if err != nil {
			s.writeErr.Store(&err)
		} else {
			s.writeErr.Store(nil)
		}
		if err != nil {
			s.log.Error("datastore commit failed; reloading state", "err", err, "ops", len(group))
			s.mu.Lock()
			if lerr := s.load(context.Background()); lerr != nil {
				s.log.Error("reload failed", "err", lerr)
			}
			s.mu.Unlock()
			for _, o := range group {
				if o.err == nil {
					o.err = fmt.Errorf("rendezvous: store: %w", err)
				}
			}
			tx.touched = nil
		} else {
			s.hooks.onSync(time.Since(start), len(group))
		}
	}
	if len(tx.touched) > 0 {
		s.hooks.notify(tx.touched)
	}
	for _, o := range group {
		close(o.done)
	}
}

// unsyncedBatcher is a datastore that can also commit a batch without
// waiting for a sync (see pebbleStore).
type unsyncedBatcher interface {
	UnsyncedBatch(ctx context.Context) (ds.Batch, error)
}

func (s *store) write(muts []mutation, sync bool) error {
	ctx := context.Background()
	var b ds.Batch
	var err error
	if u, ok := s.ds.(unsyncedBatcher); ok && !sync {
		b, err = u.UnsyncedBatch(ctx)
	} else {
		b, err = s.ds.Batch(ctx)
	}
	if err != nil {
		return err
	}
	for _, m := range muts {
		if m.del {
			err = b.Delete(ctx, m.key)
		} else {
			err = b.Put(ctx, m.key, m.value)
		}
		if err != nil {
			return err
		}
	}
	return b.Commit(ctx)
}
