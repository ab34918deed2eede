package protocols

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/libp2p/go-libp2p/core/peer"
	"google.golang.org/protobuf/proto"

	"github.com/kithnet/kith/identity"
	"github.com/kithnet/kith/protocols/pb"
)

// Every decoder here has a fuzz target. The seed corpus lives in
// testdata/fuzz/<target>/ and is rewritten by
//
//	KITH_WRITE_CORPUS=1 go test -run TestWriteFuzzCorpus ./protocols

func marshal(m proto.Message) []byte { b, _ := proto.Marshal(m); return b }

func protocolSeeds(t testing.TB) map[string][][]byte {
	w := newWorld(t)
	s, err := BuildShare(w.alice.key, w.spec([]user{w.bob}, []user{w.carol, w.dave}))
	if err != nil {
		t.Fatal(err)
	}
	offer, _ := identity.MakeOffer(w.bob.key, w.carol.id, t0, 0)
	intro, _ := s.Introduction(w.bob.id, w.carol.id)
	req, err := BuildAddRequest(w.bob.key, AddRequestSpec{ID: NewRequestID(), To: w.carol.id, Offer: offer, Introduction: intro, CreatedAt: t0})
	if err != nil {
		t.Fatal(err)
	}
	prof, _ := identity.NewProfile(w.bob.key, identity.ProfileInfo{Name: "Bob"}, t0)
	att, _ := identity.NewVerifier().Attestation(w.att[[2]peer.ID{w.alice.id, w.carol.id}], t0)
	rev, _ := identity.Revoke(w.alice.key, att, t0)
	framed := func(ms ...proto.Message) []byte {
		var b []byte
		for _, m := range ms {
			b, _ = AppendFrame(b, m)
		}
		return b
	}
	return map[string][][]byte{
		"FuzzFraming": {framed(&pb.ShareResponse{Status: pb.Status_OK}, &pb.Ack{Seqs: []uint64{1, 2}})},
		"FuzzShare":   {s.Raw},
		"FuzzAddMessage": {
			marshal(&pb.AddMessage{Msg: &pb.AddMessage_Request{Request: req}}),
			marshal(&pb.AddMessage{Msg: &pb.AddMessage_Combined{Combined: &pb.CombinedAdd{Requests: []*pb.AddRequest{req}}}}),
			marshal(&pb.AddMessage{Msg: &pb.AddMessage_Answer{Answer: &pb.AddAnswer{RequestId: make([]byte, 16), Attestation: att.Raw}}}),
		},
		"FuzzInbox": {
			marshal(&pb.InboxClient{Msg: &pb.InboxClient_Login{Login: &pb.Login{Profile: prof, Window: 64}}}),
			marshal(&pb.InboxClient{Msg: &pb.InboxClient_Ack{Ack: &pb.Ack{Seqs: []uint64{7}}}}),
			marshal(&pb.InboxServer{Msg: &pb.InboxServer_Item{Item: &pb.InboxItem{Seq: 1, Id: s.ID[:], Kind: pb.ItemKind_SHARE, Payload: s.Raw, From: []byte(w.alice.id)}}}),
			marshal(&pb.InboxServer{Msg: &pb.InboxServer_Result{Result: &pb.LoginResult{Status: pb.Status_OK, Waiting: 3}}}),
			marshal(&pb.Withdrawal{ItemId: s.ID[:], ItemKind: pb.ItemKind_SHARE, Revocation: rev}),
		},
		"FuzzPresence": {
			marshal(&pb.PresenceQuery{Asks: []*pb.PresenceAsk{{Peer: []byte(w.carol.id), Introduction: intro}}}),
			marshal(&pb.PresenceResponse{Status: pb.Status_OK, Entries: []*pb.PresenceEntry{{Peer: []byte(w.carol.id), Online: true}}}),
		},
		"FuzzRevoke": {
			marshal(&pb.RevokeRequest{Revocations: [][]byte{rev}}),
			marshal(&pb.RevokeResponse{Status: pb.Status_OK}),
		},
		"FuzzSecrets": {
			marshal(&pb.ShareSecret{SharerName: "Alice", Note: "hi", Items: []*pb.ItemSecret{{Name: "Carol", Group: "work"}, {Name: "Dave"}}}),
			marshal(&pb.RequestSecret{Message: "hello", FromName: "Bob", ProfileKey: make([]byte, 32)}),
			marshal(&pb.AnswerSecret{ProfileKey: make([]byte, 32)}),
		},
		"FuzzResponses": {
			marshal(&pb.ShareResponse{Status: pb.Status_OK, ShareId: s.ID[:], Targets: []*pb.TargetResult{{Peer: []byte(w.bob.id), Delivery: pb.Delivery_STORED}}}),
			marshal(&pb.ShareResponse{Status: pb.Status_REFUSED, Failures: []*pb.Failure{{Peer: []byte(w.mallory.id), Role: pb.Role_ITEM, Reason: pb.Reason_MISSING}}}),
			marshal(&pb.AddResponse{Status: pb.Status_OK, Results: []*pb.AddResult{{RequestId: make([]byte, 16), Delivery: pb.Delivery_DELIVERED}}}),
		},
	}
}

func TestWriteFuzzCorpus(t *testing.T) {
	if os.Getenv("KITH_WRITE_CORPUS") == "" {
		t.Skip("set KITH_WRITE_CORPUS=1 to rewrite testdata/fuzz")
	}
	for target, list := range protocolSeeds(t) {
		dir := filepath.Join("testdata", "fuzz", target)
		os.RemoveAll(dir) // seeds are made with fresh keys: replace, don't pile up
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for _, b := range list {
			sum := sha256.Sum256(b)
			content := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", b)
			if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("seed-%x", sum[:6])), []byte(content), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// statusOnly asserts a decoder's contract: its errors are *StatusError.
func statusOnly(t *testing.T, err error) {
	if err == nil {
		return
	}
	var se *StatusError
	if !errors.As(err, &se) {
		t.Fatalf("error is not a *StatusError: %v", err)
	}
}

// FuzzSecrets seals each input to Bob, as a share's part for him, a
// request's and an answer's, and opens it: what opens is checked (names
// and words within their limits, no more items than the share has) or
// refused with ErrNotRevealed; never a panic.
func FuzzSecrets(f *testing.F) {
	f.Add([]byte{})
	w := newWorld(f)
	share, err := BuildShare(w.alice.key, w.spec([]user{w.bob}, []user{w.carol, w.dave}))
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, plain []byte) {
		part, err := identity.SealTo(w.bob.enc.Public(), PurposeShare, shareBinding(share.ID, w.bob.id), plain)
		if err != nil {
			t.Fatal(err)
		}
		s := *share
		s.Targets = []ShareTarget{{Peer: w.bob.id, Sealed: part}}
		if sec, err := s.Secret(w.bob.keys, w.bob.id); err != nil {
			if !errors.Is(err, ErrNotRevealed) {
				t.Fatalf("share secret: %v", err)
			}
		} else if len(sec.Items) > len(s.Items) || len(sec.SharerName) > identity.MaxNameBytes || len(sec.Note) > MaxMessageText {
			t.Fatalf("opened %+v", sec)
		}
		id := NewRequestID()
		sealed, _ := identity.SealTo(w.bob.enc.Public(), PurposeRequest, id[:], plain)
		u := &UnverifiedAddRequest{ID: id, Sealed: sealed}
		if sec, err := u.Secret(w.bob.keys); err != nil {
			if !errors.Is(err, ErrNotRevealed) {
				t.Fatalf("request secret: %v", err)
			}
		} else if len(sec.Message) > MaxMessageText || len(sec.FromName) > identity.MaxNameBytes {
			t.Fatalf("opened %+v", sec)
		}
		sealed, _ = identity.SealTo(w.bob.enc.Public(), PurposeAnswer, id[:], plain)
		if _, err := OpenAnswer(w.bob.keys, &pb.AddAnswer{RequestId: id[:], Sealed: sealed}); err != nil && !errors.Is(err, ErrNotRevealed) {
			t.Fatalf("answer secret: %v", err)
		}
	})
}

func FuzzFraming(f *testing.F) {
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, in []byte) {
		r := NewReader(bytes.NewReader(in), 1024)
		for range 64 {
			b, err := r.ReadFrame()
			if err != nil {
				return
			}
			if len(b) > 1024 {
				t.Fatalf("frame of %d bytes passed a 1024 limit", len(b))
			}
		}
	})
}

func FuzzShare(f *testing.F) {
	f.Add([]byte{})
	v := identity.NewVerifier()
	f.Fuzz(func(t *testing.T, raw []byte) {
		s, err := DecodeShare(raw, Limits{})
		statusOnly(t, err)
		if err != nil {
			return
		}
		verdict, err := VerifyShare(v, s, t0, nil)
		statusOnly(t, err)
		if err == nil && len(verdict.Items)+countRole(verdict.Failures, pb.Role_ITEM) != len(s.Items) {
			t.Fatalf("items lost in verification: %+v", verdict)
		}
	})
}

func countRole(fs []Failure, r pb.Role) int {
	n := 0
	for _, f := range fs {
		if f.Role == r {
			n++
		}
	}
	return n
}

func FuzzAddMessage(f *testing.F) {
	f.Add([]byte{})
	v := identity.NewVerifier()
	f.Fuzz(func(t *testing.T, frame []byte) {
		_, reqs, err := DecodeAddMessage(frame, Limits{})
		statusOnly(t, err)
		for _, u := range reqs {
			if _, err := VerifyAddRequest(v, u, t0); err != nil && identity.ReasonOf(err) == identity.ReasonNone {
				t.Fatalf("error without a reason: %v", err)
			}
		}
	})
}

func FuzzInbox(f *testing.F) {
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, frame []byte) {
		_, err := DecodeInboxClient(frame)
		statusOnly(t, err)
		_, err = DecodeInboxServer(frame)
		statusOnly(t, err)
		_, err = DecodeWithdrawal(frame)
		statusOnly(t, err)
	})
}

func FuzzPresence(f *testing.F) {
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, frame []byte) {
		q, ids, err := DecodePresenceQuery(frame)
		statusOnly(t, err)
		if err == nil && len(ids) != len(q.Asks) {
			t.Fatal("ids and asks differ")
		}
		_, err = DecodePresenceResponse(frame)
		statusOnly(t, err)
	})
}

func FuzzRevoke(f *testing.F) {
	f.Add([]byte{})
	v := identity.NewVerifier()
	f.Fuzz(func(t *testing.T, frame []byte) {
		m, err := DecodeRevokeRequest(frame)
		statusOnly(t, err)
		if err == nil {
			for _, r := range m.Revocations {
				v.Revocation(r)
			}
		}
		_, err = DecodeRevokeResponse(frame)
		statusOnly(t, err)
	})
}

func FuzzResponses(f *testing.F) {
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, frame []byte) {
		if m, err := DecodeShareResponse(frame); err == nil {
			ResponseError(m.Status, m.Text, m.Failures) // must not panic
		} else {
			statusOnly(t, err)
		}
		_, err := DecodeAddResponse(frame)
		statusOnly(t, err)
	})
}
