package identity

import (
	"crypto/ed25519"
	"fmt"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hdevalence/ed25519consensus"
	"google.golang.org/protobuf/proto"

	"github.com/kithnet/kith/identity/pb"
)

type sigCase struct {
	pub ed25519.PublicKey
	msg []byte
	sig []byte
}

// sigCases returns n signatures, every bad-th one corrupted in turn: a
// flipped signature bit, a wrong message, another key, a short signature.
func sigCases(t testing.TB, n, bad int) []sigCase {
	t.Helper()
	pub2, _, _ := ed25519.GenerateKey(nil)
	out := make([]sigCase, n)
	for i := range out {
		pub, priv, err := ed25519.GenerateKey(nil)
		if err != nil {
			t.Fatal(err)
		}
		msg := []byte(fmt.Sprintf("message %d", i))
		c := sigCase{pub: pub, msg: msg, sig: ed25519.Sign(priv, msg)}
		if bad > 0 && i%bad == bad-1 {
			switch (i / bad) % 4 {
			case 0:
				c.sig = append([]byte(nil), c.sig...)
				c.sig[5] ^= 1
			case 1:
				c.msg = []byte("another message")
			case 2:
				c.pub = pub2
			case 3:
				c.sig = c.sig[:40]
			}
		}
		out[i] = c
	}
	return out
}

// TestSigBatcherAgreesWithSingleChecks checks batches of every size,
// with and without bad signatures among them: each verdict must be the
// single check's.
func TestSigBatcherAgreesWithSingleChecks(t *testing.T) {
	for _, tc := range []struct {
		name   string
		n, bad int
	}{
		{"one good", 1, 0},
		{"one bad", 1, 1},
		{"three good", 3, 0},
		{"batch good", 16, 0},
		{"batch with one bad", 16, 16},
		{"batch with every third bad", 30, 3},
		{"all bad", 8, 1},
		{"more than one batch", 150, 37},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cases := sigCases(t, tc.n, tc.bad)
			b := NewSigBatcher(64)
			// Straight through check, so that the batches are what the
			// test says.
			jobs := make([]*sigJob, len(cases))
			for i, c := range cases {
				jobs[i] = &sigJob{pub: c.pub, msg: c.msg, sig: c.sig, done: make(chan struct{})}
			}
			for i := 0; i < len(jobs); i += 64 {
				b.check(jobs[i:min(i+64, len(jobs))])
			}
			// And through Verify, concurrently.
			got := make([]bool, len(cases))
			var wg sync.WaitGroup
			for i, c := range cases {
				wg.Go(func() { got[i] = b.Verify(c.pub, c.msg, c.sig) })
			}
			wg.Wait()
			for i, c := range cases {
				want := len(c.sig) == ed25519.SignatureSize && ed25519consensus.Verify(c.pub, c.msg, c.sig)
				if jobs[i].ok != want || got[i] != want {
					t.Errorf("signature %d: batch says %v, Verify %v, single check %v", i, jobs[i].ok, got[i], want)
				}
			}
			st := b.Stats()
			if tc.n >= minBatch && st.Batches == 0 {
				t.Errorf("no batch was checked: %+v", st)
			}
			if tc.bad > 0 && tc.n >= minBatch && st.Fallbacks == 0 {
				t.Errorf("a batch with a bad signature did not fall back: %+v", st)
			}
		})
	}
}

// TestVerifierBatchesSeals checks that a Verifier with a batcher still
// refuses a seal with a bad signature and accepts good ones.
func TestVerifierBatchesSeals(t *testing.T) {
	b := NewSigBatcher(0)
	v := NewVerifier(WithSigBatcher(b), WithCacheSize(0))
	alice := newUser(t)
	for i := range 2 {
		raw := sealFor(t, alice, i)
		if _, err := v.decodeSeal("seal", raw); err != nil {
			t.Fatalf("good seal refused: %v", err)
		}
		bad := corruptSignature(t, raw)
		if _, err := v.decodeSeal("seal", bad); ReasonOf(err) != ReasonBadSignature {
			t.Fatalf("seal with a bad signature: %v", err)
		}
	}
}

// BenchmarkSigBatcher compares single checks on every core with batched
// ones from concurrent callers (a relay's share handlers): time per
// signature with all cores busy. Compare within one run.
func BenchmarkSigBatcher(b *testing.B) {
	cases := sigCases(b, 256, 0)
	b.Run("single", func(b *testing.B) {
		cpu0 := cpuTime()
		defer reportCPU(b, cpu0)
		b.RunParallel(func(pb *testing.PB) {
			i := 0
			for pb.Next() {
				c := cases[i%len(cases)]
				if !ed25519consensus.Verify(c.pub, c.msg, c.sig) {
					b.Error("bad")
					return
				}
				i++
			}
		})
	})
	for _, callers := range []int{2, 8, 64} {
		b.Run(fmt.Sprintf("batched-%d-callers", callers), func(b *testing.B) {
			bt := NewSigBatcher(0)
			b.SetParallelism(callers)
			cpu0 := cpuTime()
			b.RunParallel(func(pb *testing.PB) {
				i := 0
				for pb.Next() {
					c := cases[i%len(cases)]
					if !bt.Verify(c.pub, c.msg, c.sig) {
						b.Error("bad")
						return
					}
					i++
				}
			})
			st := bt.Stats()
			reportCPU(b, cpu0)
			if st.Batches > 0 {
				b.ReportMetric(float64(st.Batched)/float64(st.Batches), "sigs/batch")
				b.ReportMetric(float64(st.Fallbacks), "fallbacks")
				b.ReportMetric(float64(st.Batched)/float64(b.N), "batched-share")
			}
		})
	}
}

func sealFor(t *testing.T, u user, i int) []byte {
	t.Helper()
	body := []byte(fmt.Sprintf("share body %d", i))
	raw, err := SealShare(u.key, NewShareID(), body, nil, t0, t0.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// corruptSignature flips a bit of the signature of a SignedRecord.
func corruptSignature(t *testing.T, raw []byte) []byte {
	t.Helper()
	var sr pb.SignedRecord
	if err := proto.Unmarshal(raw, &sr); err != nil {
		t.Fatal(err)
	}
	sr.Signature[0] ^= 1
	out, err := proto.Marshal(&sr)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// cpuTime is the process's user and system time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// reportCPU reports CPU time per operation since cpu0: what every core
// together spent, which a wall-clock time per op on several cores hides.
func reportCPU(b *testing.B, cpu0 time.Duration) {
	b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N), "cpu-ns/op")
}
