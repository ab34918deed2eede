package rendezvous

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	ds "github.com/ipfs/go-datastore"
	dssync "github.com/ipfs/go-datastore/sync"
)

// failingDS is a datastore whose writes fail while broken is set, as a
// full or failing disk's would.
type failingDS struct {
	ds.Batching
	broken atomic.Bool
}

var errDiskFull = errors.New("no space left on device")

func (f *failingDS) Batch(ctx context.Context) (ds.Batch, error) {
	b, err := f.Batching.Batch(ctx)
	if err != nil {
		return nil, err
	}
	return &failingBatch{Batch: b, f: f}, nil
}

type failingBatch struct {
	ds.Batch
	f *failingDS
}

func (b *failingBatch) Commit(ctx context.Context) error {
	if b.f.broken.Load() {
		return errDiskFull
	}
	return b.Batch.Commit(ctx)
}

// TestReady: a relay alone is ready; one whose last write failed is not,
// and says why, until a write succeeds again; one configured to federate
// with a relay it cannot reach is not ready either.
func TestReady(t *testing.T) {
	d := &failingDS{Batching: dssync.MutexWrap(ds.NewMapDatastore())}
	r := startRelay(t, d)
	c := newCast(t)
	if rd := r.Ready(context.Background()); !rd.Ready || rd.Storage != "ok" {
		t.Fatalf("a relay alone: %+v", rd)
	}
	d.broken.Store(true)
	if resp, _ := c.alice.share(r, c.buildShare(t, []*tuser{c.bob}, []*tuser{c.carol}).Raw); resp == nil || resp.Status.String() == "OK" {
		t.Fatalf("a share stored on a broken disk: %v", resp)
	}
	rd := r.Ready(context.Background())
	if rd.Ready || !strings.Contains(rd.Storage, "no space left") {
		t.Fatalf("after a failed write: %+v", rd)
	}
	d.broken.Store(false)
	if _, err := c.alice.share(r, c.buildShare(t, []*tuser{c.bob}, []*tuser{c.carol}).Raw); err != nil {
		t.Fatal(err)
	}
	if rd := r.Ready(context.Background()); !rd.Ready {
		t.Fatalf("after the disk came back: %+v", rd)
	}

	cfg := DefaultConfig()
	other := startRelay(t, nil)
	cfg.Peers = []string{other.h.Addrs()[0].String() + "/p2p/" + other.h.ID().String()}
	other.Close()
	lonely := startRelay(t, nil, WithConfig(cfg))
	time.Sleep(200 * time.Millisecond)
	if rd := lonely.Ready(context.Background()); rd.Ready || !strings.Contains(rd.DHT, "out of reach") {
		t.Fatalf("a federated relay with no peer: %+v", rd)
	}
}
