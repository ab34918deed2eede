package identity

import (
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
)

// t0 is the fixed "now" of these tests.
var t0 = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

type user struct {
	key crypto.PrivKey
	id  peer.ID
}

func newUser(tb testing.TB) user {
	tb.Helper()
	k, err := GenerateKey()
	if err != nil {
		tb.Fatal(err)
	}
	id, err := peer.IDFromPrivateKey(k)
	if err != nil {
		tb.Fatal(err)
	}
	return user{k, id}
}

// befriend returns the raw attestation between a (requester) and b.
func befriend(tb testing.TB, a, b user, now time.Time, validity time.Duration) *Attestation {
	tb.Helper()
	offer, err := MakeOffer(a.key, b.id, now, validity)
	if err != nil {
		tb.Fatal(err)
	}
	att, err := NewVerifier().Countersign(b.key, offer, now)
	if err != nil {
		tb.Fatal(err)
	}
	return att
}

func wantReason(tb testing.TB, err error, want Reason) {
	tb.Helper()
	if got := ReasonOf(err); got != want {
		tb.Fatalf("reason = %v (err %v), want %v", got, err, want)
	}
	if want != ReasonNone {
		var ve *VerifyError
		if !asVerifyError(err, &ve) {
			tb.Fatalf("err %v is not a *VerifyError", err)
		}
		if s := want.Sentinel(); s != nil && !isErr(err, s) {
			tb.Fatalf("errors.Is(%v, %v) = false", err, s)
		}
	}
}
