package identity

import (
	"errors"
	"strings"
	"testing"
	"time"

	ma "github.com/multiformats/go-multiaddr"
	"google.golang.org/protobuf/proto"

	"github.com/kithnet/kith/identity/pb"
)

func TestInvite(t *testing.T) {
	carol, mallory := newUser(t), newUser(t)
	relay := ma.StringCast("/ip4/127.0.0.1/tcp/4001")
	raw, secret, err := NewInvite(carol.key, "Carol", []ma.Multiaddr{relay}, t0, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	link := InviteLink(raw, secret)
	if !strings.HasPrefix(link, InviteLinkPrefix) {
		t.Fatalf("link %q", link)
	}
	back, backSecret, err := ParseInviteLink("  " + link + "\n")
	if err != nil {
		t.Fatal(err)
	}
	in, err := NewVerifier().Invite(back, t0)
	if err != nil {
		t.Fatal(err)
	}
	if in.Inviter != carol.id || len(in.Relays) != 1 || InviteLink(in.Raw, backSecret) != link {
		t.Fatalf("decoded %+v", in)
	}
	// The record, which relays see in requests, does not name Carol; the
	// link's secret does.
	if in.Name != "" || strings.Contains(string(raw), "Carol") {
		t.Fatalf("the invite record names its inviter in clear")
	}
	if name, err := in.OpenName(backSecret); err != nil || name != "Carol" {
		t.Fatalf("OpenName = %q, %v", name, err)
	}
	other := make([]byte, SecretSize)
	if _, err := in.OpenName(other); !errors.Is(err, ErrCannotOpen) {
		t.Fatalf("OpenName with another secret: %v", err)
	}
	if _, err := in.OpenName(nil); !errors.Is(err, ErrCannotOpen) {
		t.Fatalf("OpenName without a secret: %v", err)
	}
	// A link cut inside its secret is refused in words.
	if _, _, err := ParseInviteLink(link[:len(link)-3]); err == nil || !strings.Contains(err.Error(), "secret") {
		t.Fatalf("a cut link: %v", err)
	}
	var sr pb.SignedRecord
	proto.Unmarshal(raw, &sr)
	forged := func() []byte {
		var b pb.InviteBody
		proto.Unmarshal(sr.Body, &b)
		b.ExpiresAt += 1 << 30
		bb, _ := proto.Marshal(&b)
		out, _ := proto.Marshal(&pb.SignedRecord{Body: bb, Signature: sr.Signature})
		return out
	}()
	resigned := func() []byte {
		sig, _ := sign(mallory.key, DomainInvite, sr.Body)
		out, _ := proto.Marshal(&pb.SignedRecord{Body: sr.Body, Signature: sig})
		return out
	}()
	tests := []struct {
		name string
		raw  []byte
		now  time.Time
		want Reason
	}{
		{"valid", raw, t0, ReasonNone},
		{"validity extended", forged, t0, ReasonBadSignature},
		{"signed by someone else", resigned, t0, ReasonBadSignature},
		{"expired", raw, t0.Add(time.Hour), ReasonExpired},
		{"from the future", raw, t0.Add(-time.Hour), ReasonNotYetValid},
		{"truncated", raw[:len(raw)-2], t0, ReasonMalformed},
		{"missing", nil, t0, ReasonMissing},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewVerifier().Invite(tt.raw, tt.now)
			wantReason(t, err, tt.want)
		})
	}
	for _, bad := range []string{"", "kith:invite:", "kith:invite:!!!", "kith:invite:a"} {
		if _, _, err := ParseInviteLink(bad); err == nil {
			t.Errorf("ParseInviteLink(%q) accepted", bad)
		}
	}
}

func FuzzInvite(f *testing.F) {
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, raw []byte) {
		in, err := NewVerifier().Invite(raw, t0)
		checkConsistent(t, err)
		if err == nil && (in.Inviter == "" || (!in.SealedName() && ValidateName(in.Name) != nil)) {
			t.Fatalf("accepted %+v", in)
		}
		ParseInviteLink(string(raw))
	})
}

func TestPackInvite(t *testing.T) {
	alice := newUser(t)
	raw, secret, err := NewPackInvite(alice.key, "Alice", nil, t0, time.Hour, &Pack{Label: "colleagues", Members: 5})
	if err != nil {
		t.Fatal(err)
	}
	in, err := NewVerifier().Invite(raw, t0)
	if err != nil {
		t.Fatal(err)
	}
	p, err := in.OpenPack(secret)
	if err != nil || p == nil || p.Label != "colleagues" || p.Members != 5 || !in.IsPack() {
		t.Fatalf("the pack: %+v %v", p, err)
	}
	if _, err := in.OpenPack(make([]byte, SecretSize)); !errors.Is(err, ErrCannotOpen) {
		t.Errorf("opened with another secret: %v", err)
	}
	plain, ps, _ := NewInvite(alice.key, "Alice", nil, t0, time.Hour)
	pin, _ := NewVerifier().Invite(plain, t0)
	if p, err := pin.OpenPack(ps); p != nil || err != nil || pin.IsPack() {
		t.Errorf("a plain invite's pack: %+v %v", p, err)
	}
}
