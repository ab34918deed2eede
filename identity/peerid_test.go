package identity

import (
	"bytes"
	"crypto/ed25519"
	"testing"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
)

// slowPublicKey is PublicKey without the in-place read of the canonical
// form: libp2p's decoder only.
func slowPublicKey(b []byte) (ed25519.PublicKey, bool) {
	id, err := peer.IDFromBytes(b)
	if err != nil {
		return nil, false
	}
	pk, err := id.ExtractPublicKey()
	if err != nil || pk.Type() != crypto.Ed25519 {
		return nil, false
	}
	raw, err := pk.Raw()
	return raw, err == nil && len(raw) == ed25519.PublicKeySize
}

// TestPeerIDFastPathAgrees: reading an Ed25519 peer id in place gives what
// libp2p's decoder gives, and refuses what it refuses.
func TestPeerIDFastPathAgrees(t *testing.T) {
	var inputs [][]byte
	for range 20 {
		u := newUser(t)
		b := []byte(u.id)
		inputs = append(inputs, b, b[:len(b)-1], append(append([]byte(nil), b...), 0))
		for _, i := range []int{0, 1, 2, 3, 4, 5} {
			m := append([]byte(nil), b...)
			m[i] ^= 0x01
			inputs = append(inputs, m)
		}
	}
	_, sk, _ := crypto.GenerateSecp256k1Key(nil)
	other, _ := peer.IDFromPublicKey(sk)
	inputs = append(inputs, []byte(other), nil, []byte{0x00}, []byte(ed25519IDPrefix))
	for i, b := range inputs {
		want, wantOK := slowPublicKey(b)
		id, pub, err := parsePeer(b)
		if (err == nil) != wantOK {
			t.Fatalf("input %d (%x): parsePeer err %v, libp2p accepts %v", i, b, err, wantOK)
		}
		if !wantOK {
			continue
		}
		if !bytes.Equal(pub, want) || string(id) != string(b) {
			t.Fatalf("input %d: key %x, want %x", i, pub, want)
		}
		if pk, err := PublicKey(id); err != nil || !bytes.Equal(pk, want) {
			t.Fatalf("input %d: PublicKey %x %v", i, pk, err)
		}
	}
}
