package identity

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Every decoder in this package is fuzzed. The seed corpus lives in
// testdata/fuzz/<target>/ and is rewritten by
//
//	KITH_WRITE_CORPUS=1 go test -run TestWriteFuzzCorpus ./identity

// seeds returns valid records of every kind, made with fixed users.
func seeds(tb testing.TB) map[string][][]byte {
	alice, bob, carol := newUser(tb), newUser(tb), newUser(tb)
	att := befriend(tb, alice, bob, t0, time.Hour)
	offer, _ := MakeOffer(carol.key, alice.id, t0, time.Hour)
	rev, _ := Revoke(alice.key, att, t0)
	prof, _ := NewProfile(alice.key, ProfileInfo{Name: "Alice", Seq: 1}, t0)
	pk := fuzzProfileKey
	sealedProf, _ := NewProfile(alice.key, ProfileInfo{Name: "Alice", Seq: 2, EncKey: fuzzEncKey(tb).Public(), ProfileKey: &pk}, t0)
	sealedTo, _ := SealTo(fuzzEncKey(tb).Public(), "fuzz", []byte("binding"), []byte("hello"))
	sealedWith, _ := SealWithSecret(fuzzSecret, "fuzz", []byte("binding"), []byte("hello"))
	f := newShare(tb, alice, []user{bob}, []user{carol})
	intro := f.intro(tb, 0)
	plainKey, _ := EncodeKeyFile(alice.key, nil, KDFParams{})
	encKey, _ := EncodeKeyFile(alice.key, []byte("pw"), fastKDF)
	invite, _, _ := NewInvite(bob.key, "Bob", nil, t0, time.Hour)
	return map[string][][]byte{
		"FuzzAttestation":  {att.Raw, offer, att.Raw[:len(att.Raw)/2]},
		"FuzzRevocation":   {rev},
		"FuzzProfile":      {prof, sealedProf},
		"FuzzSealed":       {sealedTo, sealedWith, sealedTo[:len(sealedTo)/2]},
		"FuzzIntroduction": {intro},
		"FuzzSeal":         {f.seal},
		"FuzzKeyFile":      {plainKey, encKey},
		"FuzzInvite":       {invite},
	}
}

func TestWriteFuzzCorpus(t *testing.T) {
	if os.Getenv("KITH_WRITE_CORPUS") == "" {
		t.Skip("set KITH_WRITE_CORPUS=1 to rewrite testdata/fuzz")
	}
	for target, list := range seeds(t) {
		dir := filepath.Join("testdata", "fuzz", target)
		os.RemoveAll(dir) // seeds are made with fresh keys: replace, don't pile up
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for _, b := range list {
			sum := sha256.Sum256(b)
			content := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", b)
			if target == "FuzzKeyFile" {
				content += "[]byte(\"pw\")\n"
			}
			if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("seed-%x", sum[:6])), []byte(content), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// checkConsistent asserts the contract every verifier keeps: an error is a
// *VerifyError with a real reason, and a success verifies again the same way.
func checkConsistent(t *testing.T, err error) {
	if err == nil {
		return
	}
	var ve *VerifyError
	if !asVerifyError(err, &ve) || ve.Reason == ReasonNone {
		t.Fatalf("error without a reason: %v", err)
	}
}

func FuzzAttestation(f *testing.F) {
	f.Add([]byte{})
	v := NewVerifier()
	f.Fuzz(func(t *testing.T, raw []byte) {
		a, err := v.Attestation(raw, t0)
		checkConsistent(t, err)
		if err == nil {
			if !a.Countersigned || !bytes.Equal(a.Raw, raw) {
				t.Fatalf("accepted %+v", a)
			}
			if _, err := NewVerifier().Friendship(raw, a.Accepter, a.Requester, t0); err != nil {
				t.Fatalf("accepted once, refused again: %v", err)
			}
		}
		_, err = v.Offer(raw, "", t0)
		checkConsistent(t, err)
	})
}

func FuzzRevocation(f *testing.F) {
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, raw []byte) {
		r, err := NewVerifier().Revocation(raw)
		checkConsistent(t, err)
		if err == nil && (r.Revoker == r.Other || r.Revoker == "") {
			t.Fatalf("accepted %+v", r)
		}
	})
}

func FuzzProfile(f *testing.F) {
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, raw []byte) {
		p, err := NewVerifier().Profile(raw, t0)
		checkConsistent(t, err)
		if err == nil {
			if (!p.SealedName() && ValidateName(p.Name) != nil) || len(p.Relays) > MaxProfileRelays {
				t.Fatalf("accepted %+v", p)
			}
			checkConsistent(t, p.Shareable(p.Owner))
			if name, err := p.OpenName(fuzzProfileKey); err == nil && ValidateName(name) != nil {
				t.Fatalf("opened a bad name %q", name)
			} else if err != nil && !errors.Is(err, ErrCannotOpen) {
				t.Fatalf("OpenName: %v", err)
			}
			if p.HasEncKey() {
				if _, err := p.EncKey(); err != nil && !strings.Contains(err.Error(), "encryption key") {
					t.Fatalf("EncKey: %v", err)
				}
			}
		}
	})
}

// Fixed keys for the fuzz targets, so that seeds sealed to them open.
var (
	fuzzProfileKey = ProfileKey{1, 2, 3}
	fuzzSecret     = bytes.Repeat([]byte{7}, SecretSize)
)

func fuzzEncKey(tb testing.TB) *EncKey {
	k, err := EncKeyFromSeed(bytes.Repeat([]byte{9}, 32), t0)
	if err != nil {
		tb.Fatal(err)
	}
	return k
}

// FuzzSealed: a sealed record opens, with the purpose and binding it was
// made for, or fails with ErrCannotOpen; never a panic.
func FuzzSealed(f *testing.F) {
	f.Add([]byte{})
	kr := NewKeyring()
	kr.Add(fuzzEncKey(f))
	kr.AddSecret(fuzzSecret)
	f.Fuzz(func(t *testing.T, raw []byte) {
		_, err := kr.Open("fuzz", []byte("binding"), raw)
		if err != nil && !errors.Is(err, ErrCannotOpen) {
			t.Fatalf("Open: %v", err)
		}
		if _, err := SealedKey(raw); err != nil && !errors.Is(err, ErrCannotOpen) {
			t.Fatalf("SealedKey: %v", err)
		}
	})
}

func FuzzIntroduction(f *testing.F) {
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, raw []byte) {
		in, err := NewVerifier().Introduction(raw, t0)
		checkConsistent(t, err)
		if err == nil && (in.Sharer == "" || in.Recipient == "" || in.Subject == "") {
			t.Fatalf("accepted %+v", in)
		}
	})
}

func FuzzSeal(f *testing.F) {
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, raw []byte) {
		s, err := NewVerifier().decodeSeal("seal", raw)
		checkConsistent(t, err)
		if err == nil && (s.Leaves < 1 || s.Leaves > MaxSealLeaves) {
			t.Fatalf("accepted %+v", s)
		}
	})
}

func FuzzKeyFile(f *testing.F) {
	f.Add([]byte{}, []byte{})
	f.Fuzz(func(t *testing.T, data, pass []byte) {
		// Keep the fuzzer fast: skip files whose (valid) KDF parameters would
		// make one run take long. Their bounds are tested in keys_test.go.
		var kf keyFile
		if json.Unmarshal(data, &kf) == nil && kf.KDF != nil && (kf.KDF.MemoryKiB > 1024 || kf.KDF.Time > 2) {
			t.Skip()
		}
		k, err := DecodeKeyFile(data, pass)
		if err == nil && k == nil {
			t.Fatal("nil key without error")
		}
	})
}

func FuzzConsent(f *testing.F) {
	carol, alice, bob := newUser(f), newUser(f), newUser(f)
	raw, err := NewConsent(carol.key, alice.id, bob.id, t0, time.Hour)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(raw)
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, raw []byte) {
		c, err := NewVerifier().Consent(raw, t0)
		checkConsistent(t, err)
		if err == nil && (c.Subject == c.Sharer || c.Subject == c.Target || c.Sharer == c.Target) {
			t.Fatalf("accepted %+v", c)
		}
	})
}
