package identity

import (
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
	raw, err := NewInvite(carol.key, "Carol", []ma.Multiaddr{relay}, t0, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	link := InviteLink(raw)
	if !strings.HasPrefix(link, InviteLinkPrefix) {
		t.Fatalf("link %q", link)
	}
	back, err := ParseInviteLink("  " + link + "\n")
	if err != nil {
		t.Fatal(err)
	}
	in, err := NewVerifier().Invite(back, t0)
	if err != nil {
		t.Fatal(err)
	}
	if in.Inviter != carol.id || in.Name != "Carol" || len(in.Relays) != 1 || in.Link() != link {
		t.Fatalf("decoded %+v", in)
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
		if _, err := ParseInviteLink(bad); err == nil {
			t.Errorf("ParseInviteLink(%q) accepted", bad)
		}
	}
}

func FuzzInvite(f *testing.F) {
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, raw []byte) {
		in, err := NewVerifier().Invite(raw, t0)
		checkConsistent(t, err)
		if err == nil && (in.Inviter == "" || ValidateName(in.Name) != nil) {
			t.Fatalf("accepted %+v", in)
		}
		ParseInviteLink(string(raw))
	})
}
