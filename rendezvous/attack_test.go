package rendezvous

import (
	"context"
	"encoding/binary"
	"io"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"google.golang.org/protobuf/proto"

	"github.com/kithnet/kith/identity"
	identitypb "github.com/kithnet/kith/identity/pb"
	"github.com/kithnet/kith/protocols"
	"github.com/kithnet/kith/protocols/pb"
)

// These tests speak raw protocol at the relay, as an attacker would: hand
// made frames from a host of the attacker's choosing. Each attack gets its
// own status and reason, the relay keeps serving everyone else, and
// nothing already stored is lost.

// rawExchange writes raw bytes on a new stream and returns the response
// frame, if any.
func rawExchange(t *testing.T, h host.Host, r *testRelay, id protocol.ID, raw []byte) []byte {
	t.Helper()
	h.Peerstore().AddAddrs(r.h.ID(), r.h.Addrs(), time.Hour)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := h.NewStream(ctx, r.h.ID(), id)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	s.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := s.Write(raw); err != nil {
		t.Fatal(err)
	}
	s.CloseWrite()
	frame, err := protocols.NewReader(s, protocols.MaxResponseMessage).ReadFrame()
	if err != nil && err != io.EOF {
		t.Fatalf("reading the relay's answer: %v", err)
	}
	return frame
}

func framed(m proto.Message) []byte {
	b, _ := protocols.AppendFrame(nil, m)
	return b
}

func shareFrame(raw []byte) []byte {
	var m pb.Share
	proto.Unmarshal(raw, &m)
	return framed(&m)
}

// forgeAccepter replaces the accepter's signature of an attestation with
// one by another key.
func forgeAccepter(t *testing.T, raw []byte, forger *tuser) []byte {
	var sa identitypb.SignedAttestation
	proto.Unmarshal(raw, &sa)
	unsigned := append(binary.AppendUvarint(nil, uint64(len(identity.DomainAttestation))), identity.DomainAttestation...)
	unsigned = append(binary.AppendUvarint(unsigned, uint64(len(sa.Body))), sa.Body...)
	sig, _ := forger.key.Sign(unsigned)
	sa.AccepterSig = sig
	out, _ := proto.Marshal(&sa)
	return out
}

func swapSignatures(raw []byte) []byte {
	var sa identitypb.SignedAttestation
	proto.Unmarshal(raw, &sa)
	sa.RequesterSig, sa.AccepterSig = sa.AccepterSig, sa.RequesterSig
	out, _ := proto.Marshal(&sa)
	return out
}

func TestShareAttacks(t *testing.T) {
	cfg := DefaultConfig()
	cfg.MailboxItems = 4
	r := startRelay(t, nil, WithConfig(cfg))
	c := newCast(t)

	// Legitimate traffic before the attacks: Bob (offline) has two shares.
	for range 2 {
		if _, err := c.alice.share(r, c.buildShare(t, []*tuser{c.bob}, []*tuser{c.carol}).Raw); err != nil {
			t.Fatal(err)
		}
	}

	build := func(edit func(*protocols.ShareSpec)) []byte {
		spec := c.shareSpec([]*tuser{c.erin}, []*tuser{c.carol, c.dave})
		edit(&spec)
		s, err := protocols.BuildShare(c.alice.key, spec)
		if err != nil {
			t.Fatal(err)
		}
		return shareFrame(s.Raw)
	}
	// alterSealed flips one byte of the part sealed to the target, keeping
	// the seal: the relay cannot read the part, but the seal covers it.
	alterSealed := func() []byte {
		var m pb.Share
		proto.Unmarshal(c.buildShare(t, []*tuser{c.erin}, []*tuser{c.carol}).Raw, &m)
		var body pb.ShareBody
		proto.Unmarshal(m.Body, &body)
		body.Targets[0].Sealed[len(body.Targets[0].Sealed)-1] ^= 1
		m.Body, _ = proto.Marshal(&body)
		return framed(&m)
	}
	replayed := c.buildShare(t, []*tuser{c.erin}, []*tuser{c.carol})
	if _, err := c.alice.share(r, replayed.Raw); err != nil {
		t.Fatal(err)
	}

	type want struct {
		status pb.Status
		peer   peer.ID
		reason pb.Reason
	}
	tests := []struct {
		name string
		from *tuser
		raw  []byte
		want want
	}{
		{"forged friendship signature", c.alice, build(func(s *protocols.ShareSpec) {
			s.Items[0].Attestation = forgeAccepter(t, s.Items[0].Attestation, c.mallory)
		}), want{pb.Status_REFUSED, c.carol.id, pb.Reason_BAD_SIGNATURE}},
		{"swapped signatures on the target's friendship", c.alice, build(func(s *protocols.ShareSpec) {
			s.Targets[0].Attestation = swapSignatures(s.Targets[0].Attestation)
		}), want{pb.Status_REFUSED, c.erin.id, pb.Reason_BAD_SIGNATURE}},
		{"claims a friendship it does not have", c.alice, build(func(s *protocols.ShareSpec) {
			s.Items = append(s.Items, protocols.ShareItem{Peer: c.mallory.id, Name: "Mallory"})
		}), want{pb.Status_REFUSED, c.mallory.id, pb.Reason_MISSING}},
		{"shows another pair's friendship", c.alice, build(func(s *protocols.ShareSpec) {
			s.Items[1].Attestation = c.att[c.frank.id]
		}), want{pb.Status_REFUSED, c.dave.id, pb.Reason_WRONG_PAIR}},
		{"an altered sealed part", c.alice, alterSealed(), want{pb.Status_REFUSED, c.alice.id, pb.Reason_BAD_SIGNATURE}},
		{"share signed by Alice sent by Mallory", c.mallory, build(func(*protocols.ShareSpec) {}), want{status: pb.Status_UNAUTHORIZED}},
		{"replayed share id with other contents", c.alice, build(func(s *protocols.ShareSpec) { s.ID = replayed.ID }), want{status: pb.Status_REPLAY}},
		{"oversized frame", c.alice, binary.AppendUvarint(nil, protocols.MaxShareMessage+1), want{status: pb.Status_TOO_LARGE}},
		{"truncated frame", c.alice, append(binary.AppendUvarint(nil, 1000), make([]byte, 10)...), want{status: pb.Status_BAD_REQUEST}},
		{"garbage bytes", c.alice, append(binary.AppendUvarint(nil, 12), []byte("\xff\xfegarbage!!!")...), want{status: pb.Status_BAD_REQUEST}},
		{"empty stream", c.alice, nil, want{status: pb.Status_BAD_REQUEST}},
		{"a share with no seal", c.alice, framed(&pb.Share{Body: []byte{1, 2, 3}}), want{status: pb.Status_BAD_REQUEST}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			frame := rawExchange(t, tt.from.h, r, protocols.ShareProtocol, tt.raw)
			resp, err := protocols.DecodeShareResponse(frame)
			if err != nil {
				t.Fatalf("undecodable answer: %v", err)
			}
			if resp.Status != tt.want.status {
				t.Fatalf("status %v (%s), want %v", resp.Status, resp.Text, tt.want.status)
			}
			if resp.Text == "" && len(resp.Failures) == 0 {
				t.Fatal("a refusal without a reason")
			}
			if tt.want.peer != "" {
				found := false
				for _, f := range resp.Failures {
					if peer.ID(f.Peer) == tt.want.peer && f.Reason == tt.want.reason {
						found = true
					}
				}
				if !found {
					t.Fatalf("failures %v do not name %s with %v", resp.Failures, tt.want.peer, tt.want.reason)
				}
			}
		})
	}

	t.Run("mailbox flooding past the quota", func(t *testing.T) {
		var last *pb.ShareResponse
		for i := range 3 {
			resp, _ := c.alice.share(r, c.buildShare(t, []*tuser{c.bob}, []*tuser{c.dave}).Raw)
			last = resp
			if i < 2 && resp.Status != pb.Status_OK {
				t.Fatalf("share %d within quota: %v %s", i, resp.Status, resp.Text)
			}
		}
		if last.Status != pb.Status_QUOTA_EXCEEDED || last.Failures[0].Reason != pb.Reason_MAILBOX_FULL || peer.ID(last.Failures[0].Peer) != c.bob.id {
			t.Fatalf("past the quota: %v %v", last.Status, last.Failures)
		}
	})

	t.Run("the relay still serves everyone and lost nothing", func(t *testing.T) {
		resp, err := c.alice.share(r, c.buildShare(t, []*tuser{c.frank}, []*tuser{c.carol}).Raw)
		if err != nil || delivery(resp, c.frank.id) != pb.Delivery_STORED {
			t.Fatalf("a legitimate share after the attacks: %v %v", resp, err)
		}
		inbox := c.bob.login(r)
		for range 4 {
			it := next(t, inbox)
			if it.Kind != pb.ItemKind_SHARE {
				t.Fatalf("bob got %v", it.Kind)
			}
		}
		quiet(t, inbox, 100*time.Millisecond)
	})
}

func TestShareRateLimit(t *testing.T) {
	cfg := DefaultConfig()
	cfg.ShareRate = Rate{PerSecond: 0.001, Burst: 2}
	r := startRelay(t, nil, WithConfig(cfg))
	c := newCast(t)
	var statuses []pb.Status
	for range 3 {
		resp, _ := c.alice.share(r, c.buildShare(t, []*tuser{c.bob}, []*tuser{c.carol}).Raw)
		statuses = append(statuses, resp.Status)
	}
	if statuses[0] != pb.Status_OK || statuses[1] != pb.Status_OK || statuses[2] != pb.Status_RATE_LIMITED {
		t.Fatalf("statuses %v", statuses)
	}
	// Another sender is not affected.
	if resp, err := c.bob.share(r, func() []byte {
		spec := protocols.ShareSpec{CreatedAt: time.Now(),
			Targets: []protocols.ShareTarget{{Peer: c.alice.id, Attestation: c.att[c.bob.id]}},
			Items:   []protocols.ShareItem{{Peer: c.carol.id, Attestation: befriend(t, c.bob, c.carol)}}}
		s, err := protocols.BuildShare(c.bob.key, spec)
		if err != nil {
			t.Fatal(err)
		}
		return s.Raw
	}()); err != nil {
		t.Fatalf("another sender: %v %v", resp, err)
	}
}

func TestInboxAttacks(t *testing.T) {
	r := startRelay(t, nil)
	c := newCast(t)
	if _, err := c.alice.share(r, c.buildShare(t, []*tuser{c.bob}, []*tuser{c.carol}).Raw); err != nil {
		t.Fatal(err)
	}
	login := func(profile []byte) []byte {
		return framed(&pb.InboxClient{Msg: &pb.InboxClient_Login{Login: &pb.Login{Profile: profile}}})
	}
	result := func(frame []byte) *pb.LoginResult {
		t.Helper()
		m, err := protocols.DecodeInboxServer(frame)
		if err != nil || m.GetResult() == nil {
			t.Fatalf("answer %v %v", m, err)
		}
		return m.GetResult()
	}
	tests := []struct {
		name string
		raw  []byte
		want pb.Status
	}{
		{"Mallory logs in with Bob's profile", login(c.bob.profile), pb.Status_UNAUTHORIZED},
		{"a tampered profile", login(append([]byte{}, c.mallory.profile[:len(c.mallory.profile)-1]...)), pb.Status_REFUSED},
		{"an ack before logging in", framed(&pb.InboxClient{Msg: &pb.InboxClient_Ack{Ack: &pb.Ack{Seqs: []uint64{1}}}}), pb.Status_BAD_REQUEST},
		{"garbage", append(binary.AppendUvarint(nil, 5), 0xff, 0xff, 0xff, 0xff, 0xff), pb.Status_BAD_REQUEST},
		{"oversized", binary.AppendUvarint(nil, protocols.MaxInboxMessage+1), pb.Status_TOO_LARGE},
		{"an empty stream", nil, pb.Status_BAD_REQUEST},
		{"a frame cut short", append(binary.AppendUvarint(nil, 200), 1, 2, 3), pb.Status_BAD_REQUEST},
		{"a length prefix that never ends", []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, pb.Status_BAD_REQUEST},
		{"an empty frame", binary.AppendUvarint(nil, 0), pb.Status_BAD_REQUEST},
		{"a login without a profile", login(nil), pb.Status_BAD_REQUEST},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := result(rawExchange(t, c.mallory.h, r, protocols.InboxProtocol, tt.raw)); got.Status != tt.want || got.Text == "" {
				t.Fatalf("status %v (%q), want %v", got.Status, got.Text, tt.want)
			}
		})
	}
	// Mallory's acks touch only her own mailbox.
	in := c.mallory.login(r)
	in.Ack(1, 2, 3)
	time.Sleep(50 * time.Millisecond)
	if n := r.Waiting(c.bob.id); n != 1 {
		t.Fatalf("bob has %d waiting after mallory's acks", n)
	}
}

func TestAddAttacks(t *testing.T) {
	r := startRelay(t, nil)
	c := newCast(t)
	intro := c.introduceBobToCarol(t, r)
	request := func(from *tuser, to peer.ID, intro, invite []byte) *pb.AddRequest {
		return addRequest(t, from.key, to, intro, invite)
	}
	add := func(m *pb.AddMessage) []byte { return framed(m) }
	combined := func(reqs ...*pb.AddRequest) []byte {
		return add(&pb.AddMessage{Msg: &pb.AddMessage_Combined{Combined: &pb.CombinedAdd{Requests: reqs}}})
	}
	carolInvite, _, _ := identity.NewInvite(c.carol.key, "Carol", nil, time.Now(), time.Hour)
	erinInvite, _, _ := identity.NewInvite(c.erin.key, "Erin", nil, time.Now(), time.Hour)
	// Carol withdrew another invite: her newer profile, which she logs in
	// with, lists its token.
	withdrawnInvite, _, _ := identity.NewInvite(c.carol.key, "Carol", nil, time.Now(), time.Hour)
	withdrawn, _ := identity.NewVerifier().Invite(withdrawnInvite, time.Now())
	c.carol.profile, _ = identity.NewProfile(c.carol.key, identity.ProfileInfo{Name: "Carol", Seq: 2, EncKey: c.carol.enc.Public(),
		RevokedInvites: [][16]byte{withdrawn.Token}}, time.Now())
	c.carol.login(r)
	forgedAnswer := func() []byte {
		offer, _ := identity.MakeOffer(c.bob.key, c.carol.id, time.Now(), 0)
		var sa identitypb.SignedAttestation
		proto.Unmarshal(offer, &sa)
		sa.AccepterSig = sa.RequesterSig // Bob "countersigns" for Carol
		raw, _ := proto.Marshal(&sa)
		return add(&pb.AddMessage{Msg: &pb.AddMessage_Answer{Answer: &pb.AddAnswer{RequestId: make([]byte, 16), Attestation: raw}}})
	}()
	// A request whose sealed words were altered on the way: the
	// requester's signature covers them.
	altered := func() *pb.AddRequest {
		offer, _ := identity.MakeOffer(c.bob.key, c.carol.id, time.Now(), 0)
		req, err := protocols.BuildAddRequest(c.bob.key, protocols.AddRequestSpec{ID: protocols.NewRequestID(), To: c.carol.id,
			Offer: offer, Introduction: intro, Message: "hello", FromName: "Bob", CreatedAt: time.Now(), ToKey: c.carol.enc.Public()})
		if err != nil {
			t.Fatal(err)
		}
		var body pb.AddRequestBody
		proto.Unmarshal(req.Body, &body)
		body.Sealed[len(body.Sealed)-1] ^= 1
		req.Body, _ = proto.Marshal(&body)
		return req
	}()
	tests := []struct {
		name   string
		from   *tuser
		raw    []byte
		status pb.Status
		reason pb.Reason
	}{
		{"Bob's request with its sealed words altered", c.bob, combined(altered), pb.Status_REFUSED, pb.Reason_BAD_SIGNATURE},
		{"Bob's request sent by Mallory", c.mallory, combined(request(c.bob, c.carol.id, intro, nil)), pb.Status_UNAUTHORIZED, 0},
		{"Mallory claims Bob's introduction", c.mallory, combined(request(c.mallory, c.carol.id, intro, nil)), pb.Status_REFUSED, pb.Reason_WRONG_PAIR},
		{"Mallory uses Erin's invite to reach Carol", c.mallory, combined(request(c.mallory, c.carol.id, nil, erinInvite)), pb.Status_REFUSED, pb.Reason_WRONG_PAIR},
		{"a forged answer", c.bob, forgedAnswer, pb.Status_REFUSED, 0},
		{"garbage", c.mallory, append(binary.AppendUvarint(nil, 3), 1, 2, 3), pb.Status_BAD_REQUEST, 0},
		{"oversized", c.mallory, binary.AppendUvarint(nil, protocols.MaxAddMessage+1), pb.Status_TOO_LARGE, 0},
		{"an invite Carol withdrew", c.mallory, combined(request(c.mallory, c.carol.id, nil, withdrawnInvite)), pb.Status_REFUSED, pb.Reason_REVOKED},
		{"a valid invite is accepted", c.mallory, combined(request(c.mallory, c.carol.id, nil, carolInvite)), pb.Status_OK, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, err := protocols.DecodeAddResponse(rawExchange(t, tt.from.h, r, protocols.AddProtocol, tt.raw))
			if err != nil {
				t.Fatal(err)
			}
			if resp.Status != tt.status {
				t.Fatalf("status %v (%s), want %v", resp.Status, resp.Text, tt.status)
			}
			if tt.reason != 0 && (len(resp.Results) != 1 || resp.Results[0].Reason != tt.reason) {
				t.Fatalf("results %v, want reason %v", resp.Results, tt.reason)
			}
		})
	}
	if n := r.Waiting(c.carol.id); n != 1 {
		t.Fatalf("carol has %d waiting, want only the invited request", n)
	}
}
