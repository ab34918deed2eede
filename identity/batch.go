package identity

import (
	"crypto/ed25519"
	"runtime"
	"sync"

	"github.com/hdevalence/ed25519consensus"
)

// Batching Ed25519 verification (ed25519consensus) checks n signatures in
// one multiscalar multiplication: about 1.9x the single rate at 64 per
// batch, but slower than single checks below a few. A batch answers one
// bool; when it fails, each of its signatures is checked alone, so one bad
// signature costs its batch a second pass but never changes another's
// verdict (ZIP-215 rules make batch and single checks agree).
const (
	// DefaultMaxBatch bounds one batch.
	DefaultMaxBatch = 64
	// minBatch is the smallest batch worth it; fewer are checked one by one.
	minBatch = 4
)

// SigBatcher verifies signatures submitted by concurrent callers in
// batches. It has no goroutine or timer of its own and never waits to fill
// a batch: a caller who finds no check running checks its own signature at
// once, and whatever others submit meanwhile forms the next batch, checked
// by whichever callers are already working (at most GOMAXPROCS at a time).
// Alone, a caller pays one single check; under load, callers share
// batches. A SigBatcher is safe for concurrent use; the zero value is not
// usable, use NewSigBatcher.
type SigBatcher struct {
	max       int
	maxActive int

	mu     sync.Mutex
	queue  []*sigJob
	active int

	batches, batched, fallbacks uint64 // guarded by mu, for Stats
}

type sigJob struct {
	pub  ed25519.PublicKey
	msg  []byte
	sig  []byte
	ok   bool
	done chan struct{}
}

// NewSigBatcher returns a SigBatcher whose batches hold at most max
// signatures (DefaultMaxBatch if max <= 0).
func NewSigBatcher(max int) *SigBatcher {
	if max <= 0 {
		max = DefaultMaxBatch
	}
	return &SigBatcher{max: max, maxActive: runtime.GOMAXPROCS(0)}
}

// Verify reports whether sig is pub's signature of msg, as
// ed25519consensus.Verify does; concurrent calls share batches.
func (b *SigBatcher) Verify(pub ed25519.PublicKey, msg, sig []byte) bool {
	if len(sig) != ed25519.SignatureSize || len(pub) != ed25519.PublicKeySize {
		return false
	}
	j := &sigJob{pub: pub, msg: msg, sig: sig, done: make(chan struct{})}
	b.mu.Lock()
	b.queue = append(b.queue, j)
	work := b.active == 0 || (b.active < b.maxActive && len(b.queue) >= b.max/4)
	if work {
		b.active++
	}
	b.mu.Unlock()
	if work {
		b.work()
	}
	<-j.done
	return j.ok
}

// work checks queued signatures until the queue is empty, or until it
// holds too few for a batch while another worker is busy: those wait for
// that worker, so that batches form instead of every free worker taking
// one signature at a time. Every job queued is taken: a job is queued
// under mu, and a worker leaves a non-empty queue (under mu) only while
// another worker is active, which looks at the queue again before it
// leaves.
func (b *SigBatcher) work() {
	for {
		b.mu.Lock()
		n := min(len(b.queue), b.max)
		if n == 0 || (n < minBatch && b.active > 1) {
			b.active--
			b.mu.Unlock()
			return
		}
		jobs := make([]*sigJob, n)
		copy(jobs, b.queue)
		b.queue = append(b.queue[:0], b.queue[n:]...)
		b.mu.Unlock()
		b.check(jobs)
	}
}

func (b *SigBatcher) check(jobs []*sigJob) {
	single := len(jobs) < minBatch
	if !single {
		bv := ed25519consensus.NewPreallocatedBatchVerifier(len(jobs))
		for _, j := range jobs {
			bv.Add(j.pub, j.msg, j.sig)
		}
		if bv.Verify() {
			for _, j := range jobs {
				j.ok = true
				close(j.done)
			}
			b.count(len(jobs), false)
			return
		}
		b.count(len(jobs), true)
	}
	for _, j := range jobs {
		j.ok = ed25519consensus.Verify(j.pub, j.msg, j.sig)
		close(j.done)
	}
}

func (b *SigBatcher) count(n int, failed bool) {
	b.mu.Lock()
	b.batches++
	b.batched += uint64(n)
	if failed {
		b.fallbacks++
	}
	b.mu.Unlock()
}

// BatchStats counts what a SigBatcher did.
type BatchStats struct {
	Batches   uint64 // batches checked (of at least 4 signatures)
	Batched   uint64 // signatures in them
	Fallbacks uint64 // batches that failed and were checked one by one
}

// Stats returns counts since the SigBatcher was made (zero for nil).
func (b *SigBatcher) Stats() BatchStats {
	if b == nil {
		return BatchStats{}
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return BatchStats{Batches: b.batches, Batched: b.batched, Fallbacks: b.fallbacks}
}
