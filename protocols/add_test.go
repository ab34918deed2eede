package protocols

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"google.golang.org/protobuf/proto"

	"github.com/kithnet/kith/identity"
	"github.com/kithnet/kith/protocols/pb"
)

// bobAsks builds Bob's request to the given item of a share Alice made.
func bobAsks(t *testing.T, w *world, s *UnverifiedShare, to user) *pb.AddRequest {
	t.Helper()
	offer, err := identity.MakeOffer(w.bob.key, to.id, t0, 0)
	if err != nil {
		t.Fatal(err)
	}
	intro, err := s.Introduction(w.bob.id, to.id)
	if err != nil {
		t.Fatal(err)
	}
	r, err := BuildAddRequest(w.bob.key, AddRequestSpec{
		ID: NewRequestID(), To: to.id, Offer: offer, Introduction: intro,
		Message: "Alice shared you with me", FromName: "Bob", CreatedAt: t0, ToKey: to.enc.Public(),
	})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestAddRequestRoundTrip(t *testing.T) {
	w := newWorld(t)
	s, _ := BuildShare(w.alice.key, w.spec([]user{w.bob}, []user{w.carol, w.dave}))
	req := bobAsks(t, w, s, w.carol)
	frame, _ := proto.Marshal(&pb.AddMessage{Msg: &pb.AddMessage_Request{Request: req}})
	_, reqs, err := DecodeAddMessage(frame, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	v := identity.NewVerifier()
	got, err := VerifyAddRequest(v, reqs[0], t0)
	if err != nil {
		t.Fatal(err)
	}
	if got.From != w.bob.id || got.To != w.carol.id || got.Introduction.Sharer != w.alice.id || got.Message != "" {
		t.Fatalf("decoded %+v", got)
	}
	// The words are sealed to Carol: the relay that carries the request
	// reads neither them nor Bob's name; Carol's keys open them.
	if strings.Contains(string(frame), "Alice shared you") || strings.Contains(string(frame), "Bob") {
		t.Fatal("the request's words travel in clear")
	}
	sec, err := got.Secret(w.carol.keys)
	if err != nil || sec.Message != "Alice shared you with me" || sec.FromName != "Bob" {
		t.Fatalf("Secret = %+v, %v", sec, err)
	}
	if _, err := got.Secret(w.dave.keys); !errors.Is(err, ErrNotRevealed) {
		t.Fatalf("Dave opened Carol's request: %v", err)
	}
	// Carol accepts: countersigning the offer makes the friendship.
	att, err := v.Countersign(w.carol.key, got.UnverifiedAddRequest.Offer, t0)
	if err != nil {
		t.Fatal(err)
	}
	ans, _ := proto.Marshal(&pb.AddMessage{Msg: &pb.AddMessage_Answer{Answer: &pb.AddAnswer{RequestId: got.ID[:], Attestation: att.Raw}}})
	if _, _, err := DecodeAddMessage(ans, Limits{}); err != nil {
		t.Fatal(err)
	}
	if _, err := v.Friendship(att.Raw, w.bob.id, w.carol.id, t0); err != nil {
		t.Fatal(err)
	}
}

func TestVerifyAddRequestFailures(t *testing.T) {
	w := newWorld(t)
	s, _ := BuildShare(w.alice.key, w.spec([]user{w.bob}, []user{w.carol, w.dave}))
	good := bobAsks(t, w, s, w.carol)
	var body pb.AddRequestBody
	proto.Unmarshal(good.Body, &body)
	resign := func(edit func(*pb.AddRequestBody), signer user) *pb.AddRequest {
		b := proto.Clone(&body).(*pb.AddRequestBody)
		edit(b)
		br, _ := proto.Marshal(b)
		sig, _ := identity.SignBody(signer.key, DomainAddRequest, br)
		return &pb.AddRequest{Body: br, Signature: sig}
	}
	daveIntro, _ := s.Introduction(w.bob.id, w.dave.id)
	malOffer, _ := identity.MakeOffer(w.mallory.key, w.carol.id, t0, 0)
	// Mallory claims Alice introduced her to Carol: she can only reuse Bob's.
	// Or she seals an introduction herself, with a key made for it (a sock
	// puppet she is "friends" with), or has Alice, a friend of Carol's
	// but not hers, seal one.
	malAsks := func(sealer user, targetAtt, itemAtt []byte) *pb.AddRequest {
		spec := ShareSpec{CreatedAt: t0,
			Targets: []ShareTarget{{Peer: w.mallory.id, Attestation: targetAtt}},
			Items:   []ShareItem{{Peer: w.carol.id, Attestation: itemAtt}}}
		sh, err := BuildShare(sealer.key, spec)
		if err != nil {
			t.Fatal(err)
		}
		intro, _ := sh.Introduction(w.mallory.id, w.carol.id)
		r, err := BuildAddRequest(w.mallory.key, AddRequestSpec{ID: NewRequestID(), To: w.carol.id, Offer: malOffer, Introduction: intro, CreatedAt: t0})
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	// Erin, a friend of both Bob and Carol, shares Carol with Bob too.
	erinShare, err := BuildShare(w.erin.key, ShareSpec{CreatedAt: t0,
		Targets: []ShareTarget{{Peer: w.bob.id, Attestation: befriend(t, w.erin, w.bob)}},
		Items:   []ShareItem{{Peer: w.carol.id, Attestation: befriend(t, w.erin, w.carol)}}})
	if err != nil {
		t.Fatal(err)
	}
	erinIntro, _ := erinShare.Introduction(w.bob.id, w.carol.id)
	puppet := newUser(t, "Puppet")
	puppetMal := befriend(t, puppet, w.mallory)
	aliceCarol := w.att[[2]peer.ID{w.alice.id, w.carol.id}]
	malHalf, _ := identity.MakeOffer(w.mallory.key, w.alice.id, t0, 0)
	tests := []struct {
		name string
		req  *pb.AddRequest
		now  time.Time
		want identity.Reason
	}{
		{"valid", good, t0, identity.ReasonNone},
		{"signed by someone else", resign(func(*pb.AddRequestBody) {}, w.mallory), t0, identity.ReasonBadSignature},
		{"message changed in transit", func() *pb.AddRequest {
			b := proto.Clone(&body).(*pb.AddRequestBody)
			b.Message = "send money"
			br, _ := proto.Marshal(b)
			return &pb.AddRequest{Body: br, Signature: good.Signature}
		}(), t0, identity.ReasonBadSignature},
		{"introduction to another friend", resign(func(b *pb.AddRequestBody) { b.Introduction = daveIntro }, w.bob), t0, identity.ReasonWrongPair},
		{"introduction claimed by someone it was not given to", resign(func(b *pb.AddRequestBody) {
			b.From = []byte(w.mallory.id)
			b.Offer = malOffer
		}, w.mallory), t0, identity.ReasonWrongPair},
		{"offer made by another requester", resign(func(b *pb.AddRequestBody) { b.Offer = malOffer }, w.bob), t0, identity.ReasonWrongPair},
		{"introduction expired", good, t0.Add(DefaultShareValidity), identity.ReasonExpired},
		{"sock puppet: a fresh key introduces Mallory to Carol", malAsks(puppet, puppetMal, nil), t0, identity.ReasonMissing},
		{"sock puppet showing Alice's friendship with Carol", malAsks(puppet, puppetMal, aliceCarol), t0, identity.ReasonWrongPair},
		{"Alice, Carol's friend but not Mallory's, introduces Mallory", malAsks(w.alice, nil, aliceCarol), t0, identity.ReasonMissing},
		{"Alice introduces Mallory on Mallory's half of a friendship", malAsks(w.alice, malHalf, aliceCarol), t0, identity.ReasonBadSignature},
		{"Alice introduces her friend Mallory without her friendship with Carol", malAsks(w.alice, befriend(t, w.alice, w.mallory), nil), t0, identity.ReasonMissing},
		{"Erin's introduction too", resign(func(b *pb.AddRequestBody) { b.MoreIntroductions = [][]byte{erinIntro} }, w.bob), t0, identity.ReasonNone},
		{"Alice's introduction twice", resign(func(b *pb.AddRequestBody) { b.MoreIntroductions = [][]byte{b.Introduction} }, w.bob), t0, identity.ReasonMalformed},
		{"a further introduction to another friend", resign(func(b *pb.AddRequestBody) { b.MoreIntroductions = [][]byte{erinIntro, daveIntro} }, w.bob), t0, identity.ReasonWrongPair},
		{"a further introduction Mallory sealed", resign(func(b *pb.AddRequestBody) {
			b.MoreIntroductions = [][]byte{malAsksIntro(t, w, puppet, puppetMal)}
		}, w.bob), t0, identity.ReasonMissing},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u, err := DecodeAddRequest(tt.req)
			if err != nil {
				t.Fatal(err)
			}
			_, err = VerifyAddRequest(identity.NewVerifier(), u, tt.now)
			if got := identity.ReasonOf(err); got != tt.want {
				t.Fatalf("reason %v (%v), want %v", got, err, tt.want)
			}
		})
	}
}

// malAsksIntro is an introduction of Mallory to Carol that sealer seals.
func malAsksIntro(t *testing.T, w *world, sealer user, targetAtt []byte) []byte {
	t.Helper()
	sh, err := BuildShare(sealer.key, ShareSpec{CreatedAt: t0,
		Targets: []ShareTarget{{Peer: w.mallory.id, Attestation: targetAtt}},
		Items:   []ShareItem{{Peer: w.carol.id}}})
	if err != nil {
		t.Fatal(err)
	}
	intro, _ := sh.Introduction(w.mallory.id, w.carol.id)
	return intro
}

func TestTooManyIntroductions(t *testing.T) {
	w := newWorld(t)
	s, _ := BuildShare(w.alice.key, w.spec([]user{w.bob}, []user{w.carol}))
	offer, _ := identity.MakeOffer(w.bob.key, w.carol.id, t0, 0)
	intro, _ := s.Introduction(w.bob.id, w.carol.id)
	more := make([][]byte, MaxIntroductions)
	for i := range more {
		more[i] = intro
	}
	if _, err := BuildAddRequest(w.bob.key, AddRequestSpec{ID: NewRequestID(), To: w.carol.id, Offer: offer, Introduction: intro, MoreIntroductions: more, CreatedAt: t0}); StatusOf(err) != pb.Status_TOO_LARGE {
		t.Fatalf("%d introductions: %v", 1+len(more), err)
	}
	if _, err := BuildAddRequest(w.bob.key, AddRequestSpec{ID: NewRequestID(), To: w.carol.id, Offer: offer, Invite: []byte{1}, MoreIntroductions: more[:1], CreatedAt: t0}); StatusOf(err) != pb.Status_BAD_REQUEST {
		t.Fatalf("further introductions without a first: %v", err)
	}
}

func TestDecodeAddMessageStructure(t *testing.T) {
	w := newWorld(t)
	s, _ := BuildShare(w.alice.key, w.spec([]user{w.bob}, []user{w.carol, w.dave}))
	r1, r2 := bobAsks(t, w, s, w.carol), bobAsks(t, w, s, w.dave)
	frame := func(m *pb.AddMessage) []byte { b, _ := proto.Marshal(m); return b }
	combined := func(reqs ...*pb.AddRequest) []byte {
		return frame(&pb.AddMessage{Msg: &pb.AddMessage_Combined{Combined: &pb.CombinedAdd{Requests: reqs}}})
	}
	other := func() *pb.AddRequest {
		// A request by Erin, to be mixed into Bob's combined request.
		offer, _ := identity.MakeOffer(w.erin.key, w.carol.id, t0, 0)
		r, _ := BuildAddRequest(w.erin.key, AddRequestSpec{ID: NewRequestID(), To: w.carol.id, Offer: offer, Invite: []byte("x"), CreatedAt: t0})
		return r
	}()
	tests := []struct {
		name string
		in   []byte
		lim  Limits
		want error
		n    int
	}{
		{"combined", combined(r1, r2), Limits{}, nil, 2},
		{"combined over the relay's limit", combined(r1, r2), Limits{RequestsPerAdd: 1}, ErrTooLarge, 0},
		{"combined with a request twice", combined(r1, r1), Limits{}, ErrBadRequest, 0},
		{"combined mixing requesters", combined(r1, other), Limits{}, ErrBadRequest, 0},
		{"combined with nothing", combined(), Limits{}, ErrBadRequest, 0},
		{"empty message", frame(&pb.AddMessage{}), Limits{}, ErrBadRequest, 0},
		{"garbage", []byte{0xff, 0x01}, Limits{}, ErrBadRequest, 0},
		{"oversized", make([]byte, MaxAddMessage+1), Limits{}, ErrTooLarge, 0},
		{"answer without attestation", frame(&pb.AddMessage{Msg: &pb.AddMessage_Answer{Answer: &pb.AddAnswer{RequestId: make([]byte, 16)}}}), Limits{}, ErrBadRequest, 0},
		{"request without offer", frame(&pb.AddMessage{Msg: &pb.AddMessage_Request{Request: func() *pb.AddRequest {
			var b pb.AddRequestBody
			proto.Unmarshal(r1.Body, &b)
			b.Offer = nil
			br, _ := proto.Marshal(&b)
			return &pb.AddRequest{Body: br}
		}()}}), Limits{}, ErrBadRequest, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, reqs, err := DecodeAddMessage(tt.in, tt.lim)
			if tt.want == nil && err != nil || tt.want != nil && !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			if len(reqs) != tt.n {
				t.Fatalf("%d requests, want %d", len(reqs), tt.n)
			}
		})
	}
}
