package rendezvous

import (
	"bytes"
	"context"
	"encoding/binary"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/record"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/kithnet/kith/identity"
	"github.com/kithnet/kith/protocols"
	"github.com/kithnet/kith/protocols/pb"
)

// loginFixture is a user whose login the tests send, and its frames.
type loginFixture struct {
	id      peer.ID
	profile []byte
	record  []byte
}

func newLoginFixture(tb testing.TB) loginFixture {
	tb.Helper()
	k, _ := identity.GenerateKey()
	id, _ := peer.IDFromPrivateKey(k)
	prof, err := identity.NewProfile(k, identity.ProfileInfo{Name: "Bob", Seq: 1}, t0)
	if err != nil {
		tb.Fatal(err)
	}
	rec := peer.PeerRecordFromAddrInfo(peer.AddrInfo{ID: id, Addrs: []ma.Multiaddr{ma.StringCast("/ip4/127.0.0.1/tcp/4001")}})
	env, err := record.Seal(rec, k)
	if err != nil {
		tb.Fatal(err)
	}
	raw, _ := env.Marshal()
	return loginFixture{id: id, profile: prof, record: raw}
}

func (f loginFixture) frame(profile, rec []byte) []byte {
	return framed(&pb.InboxClient{Msg: &pb.InboxClient_Login{Login: &pb.Login{Profile: profile, PeerRecord: rec}}})
}

// readLogin is what the relay does with the first bytes of a session: read
// one frame, decode it as a login, check it for the connection's peer.
func readLogin(raw []byte, remote peer.ID) error {
	frame, err := protocols.NewReader(bytes.NewReader(raw), protocols.MaxInboxClient).ReadFrame()
	login, err := decodeLogin(frame, err)
	if err != nil {
		return err
	}
	_, _, err = checkLogin(identity.NewVerifier(), login, remote, t0)
	return err
}

// loginStatuses are the answers a login may get: never INTERNAL.
var loginStatuses = map[pb.Status]bool{
	pb.Status_OK: true, pb.Status_BAD_REQUEST: true, pb.Status_TOO_LARGE: true,
	pb.Status_REFUSED: true, pb.Status_UNAUTHORIZED: true,
}

func TestLoginChecks(t *testing.T) {
	bob := newLoginFixture(t)
	mallory := newLoginFixture(t)
	overflow := bytes.Repeat([]byte{0xff}, 11)
	tests := []struct {
		name string
		raw  []byte
		want pb.Status
	}{
		{"a valid login", bob.frame(bob.profile, bob.record), pb.Status_OK},
		{"a valid login without addresses", bob.frame(bob.profile, nil), pb.Status_OK},
		{"an empty stream", nil, pb.Status_BAD_REQUEST},
		{"a frame cut short", append(binary.AppendUvarint(nil, 100), 1, 2, 3), pb.Status_BAD_REQUEST},
		{"a length prefix that never ends", overflow, pb.Status_BAD_REQUEST},
		{"a length prefix past the limit", binary.AppendUvarint(nil, protocols.MaxInboxClient+1), pb.Status_TOO_LARGE},
		{"garbage", append(binary.AppendUvarint(nil, 4), 0xff, 0xff, 0xff, 0xff), pb.Status_BAD_REQUEST},
		{"an empty message", binary.AppendUvarint(nil, 0), pb.Status_BAD_REQUEST},
		{"an acknowledgement first", framed(&pb.InboxClient{Msg: &pb.InboxClient_Ack{Ack: &pb.Ack{Seqs: []uint64{1}}}}), pb.Status_BAD_REQUEST},
		{"a login without a profile", bob.frame(nil, bob.record), pb.Status_BAD_REQUEST},
		{"an empty login", framed(&pb.InboxClient{Msg: &pb.InboxClient_Login{}}), pb.Status_BAD_REQUEST},
		{"a profile that does not decode", bob.frame([]byte("not a profile"), nil), pb.Status_REFUSED},
		{"someone else's profile", bob.frame(mallory.profile, nil), pb.Status_UNAUTHORIZED},
		{"someone else's peer record", bob.frame(bob.profile, mallory.record), pb.Status_UNAUTHORIZED},
		{"a peer record that does not decode", bob.frame(bob.profile, []byte{1, 2, 3}), pb.Status_UNAUTHORIZED},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := readLogin(tt.raw, bob.id)
			if got := protocols.StatusOf(err); got != tt.want {
				t.Fatalf("status %v (%v), want %v", got, err, tt.want)
			}
			if err == nil {
				return
			}
			if s, text := statusText(err); text == "" || s == pb.Status_INTERNAL {
				t.Fatalf("answered %v %q", s, text)
			}
		})
	}
}

// FuzzLogin sends anything as a session's first bytes: the relay answers
// with a status that says what was wrong (never INTERNAL) and never
// panics.
func FuzzLogin(f *testing.F) {
	bob := newLoginFixture(f)
	f.Add(bob.frame(bob.profile, bob.record))
	f.Add(bob.frame(bob.profile, nil))
	f.Add([]byte{})
	f.Add(bytes.Repeat([]byte{0xff}, 11))
	f.Add(binary.AppendUvarint(nil, protocols.MaxInboxClient+1))
	f.Fuzz(func(t *testing.T, raw []byte) {
		err := readLogin(raw, bob.id)
		if !loginStatuses[protocols.StatusOf(err)] {
			t.Fatalf("answered %v: %v", protocols.StatusOf(err), err)
		}
		if err != nil {
			if _, text := statusText(err); text == "" {
				t.Fatal("a refusal without words")
			}
		}
	})
}

// TestLoginWithTheRelaysClockBehind: a relay whose clock (the time its
// decisions use) is a minute behind still waits for a login that arrives
// slowly: the stream's deadline is set in real time. It was set from the
// relay's clock, so it had passed before the login's second byte came.
func TestLoginWithTheRelaysClockBehind(t *testing.T) {
	r := startRelay(t, nil, WithClock(func() time.Time { return time.Now().Add(-time.Minute) }))
	bob := newTUser(t, "Bob")
	bob.meet(r)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := bob.h.NewStream(ctx, r.h.ID(), protocols.InboxProtocol)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Reset()
	frame := framed(&pb.InboxClient{Msg: &pb.InboxClient_Login{Login: &pb.Login{Profile: bob.profile}}})
	s.Write(frame[:1])
	time.Sleep(300 * time.Millisecond)
	s.Write(frame[1:])
	s.SetReadDeadline(time.Now().Add(10 * time.Second))
	answer, err := protocols.NewReader(s, protocols.MaxInboxMessage).ReadFrame()
	if err != nil {
		t.Fatalf("no answer to a slow login: %v", err)
	}
	m, err := protocols.DecodeInboxServer(answer)
	if err != nil || m.GetResult().GetStatus() != pb.Status_OK {
		t.Fatalf("answer %v %v", m, err)
	}
}
