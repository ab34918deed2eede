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

func TestShareRoundTrip(t *testing.T) {
	w := newWorld(t)
	spec := w.spec([]user{w.bob, w.erin}, []user{w.carol, w.dave, w.frank})
	built, err := BuildShare(w.alice.key, spec)
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeShare(built.Raw, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != built.ID || got.Sharer != w.alice.id || len(got.Items) != 3 || len(got.Targets) != 2 {
		t.Fatalf("decoded %+v", got)
	}
	// Names, groups and the sharer's name are sealed to each target: not
	// in the bytes a relay stores, opened by each target, by no one else.
	for _, word := range []string{"Alice", "Dave", "work"} {
		if strings.Contains(string(got.Raw), word) {
			t.Fatalf("%q travels in clear", word)
		}
	}
	if got.Items[1].Name != "" || got.SharerName != "" {
		t.Fatalf("decoded names before opening: %+v", got.Items[1])
	}
	for _, tg := range []user{w.bob, w.erin} {
		sec, err := got.Secret(tg.keys, tg.id)
		if err != nil {
			t.Fatalf("%s: %v", tg.name, err)
		}
		if sec.SharerName != "Alice" || len(sec.Items) != 3 || sec.Items[1].Name != "Dave" || sec.Items[1].Group != "work" {
			t.Fatalf("%s opened %+v", tg.name, sec)
		}
	}
	if _, err := got.Secret(w.bob.keys, w.erin.id); !errors.Is(err, ErrNotRevealed) {
		t.Fatalf("Bob opened Erin's part: %v", err)
	}
	if _, err := got.Secret(w.mallory.keys, w.mallory.id); !errors.Is(err, ErrNotRevealed) {
		t.Fatalf("Mallory, no target, opened a part: %v", err)
	}
	sec, _ := got.Secret(w.bob.keys, w.bob.id)
	got.Reveal(sec)
	if got.Items[1].Name != "Dave" || got.SharerName != "Alice" {
		t.Fatalf("revealed %+v", got.Items[1])
	}
	// A target without a key cannot be sealed for: the share is not made.
	noKey := w.spec([]user{w.bob}, []user{w.carol})
	noKey.Targets[0].Key = nil
	if _, err := BuildShare(w.alice.key, noKey); !errors.Is(err, identity.ErrNoEncKey) {
		t.Fatalf("a share for a target without a key: %v", err)
	}
	v := identity.NewVerifier()
	verdict, err := VerifyShare(v, got, t0, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(verdict.Failures) != 0 || len(verdict.Items) != 3 || len(verdict.Targets) != 2 || verdict.Refused(got.Mode) {
		t.Fatalf("verdict %+v", verdict)
	}
	// Each target can prove to each item that Alice introduced them.
	for _, tg := range []user{w.bob, w.erin} {
		for _, it := range []user{w.carol, w.dave, w.frank} {
			intro, err := got.Introduction(tg.id, it.id)
			if err != nil {
				t.Fatal(err)
			}
			in, err := v.IntroductionTo(intro, tg.id, it.id, t0)
			if err != nil {
				t.Fatalf("%s -> %s: %v", tg.name, it.name, err)
			}
			if in.Sharer != w.alice.id || in.ShareID != got.ID {
				t.Fatalf("introduction %+v", in)
			}
		}
	}
	if _, err := got.Introduction(w.mallory.id, w.carol.id); err == nil {
		t.Fatal("introduction made for a non-target")
	}
}

func TestVerifyShareFailures(t *testing.T) {
	w := newWorld(t)
	dana := newUser(t, "Dana") // Alice's friend whose friendship has expired
	old, _ := identity.MakeOffer(w.alice.key, dana.id, t0.Add(-2*time.Hour), time.Hour)
	expired, _ := identity.NewVerifier().Countersign(dana.key, old, t0.Add(-2*time.Hour))
	revs := identity.NewRevocationSet()
	gone := newUser(t, "Gone") // unfriended Alice
	goneAtt := befriend(t, w.alice, gone)
	ga, _ := identity.NewVerifier().Attestation(goneAtt, t0)
	rraw, _ := identity.Revoke(gone.key, ga, t0)
	rev, _ := identity.NewVerifier().Revocation(rraw)
	revs.Add(rev)
	shy := newUser(t, "Shy") // friend who said nobody may share them
	shyAtt := befriend(t, w.alice, shy)
	shyProfile, _ := identity.NewProfile(shy.key, identity.ProfileInfo{Name: "Shy", Policy: identity.ShareByNobody}, t0)
	mallorySelf := befriend(t, w.mallory, w.carol) // a real attestation, but not Alice's
	// Asker wants to be asked first; they consented to Alice sharing them
	// with Bob, and with Carol, but not to anything else.
	asker := newUser(t, "Asker")
	askerAtt := befriend(t, w.alice, asker)
	askerProfile, _ := identity.NewProfile(asker.key, identity.ProfileInfo{Name: "Asker", Policy: identity.ShareAskFirst}, t0)
	toBob, _ := identity.NewConsent(asker.key, w.alice.id, w.bob.id, t0, 0)
	toCarol, _ := identity.NewConsent(asker.key, w.alice.id, w.carol.id, t0, 0)
	byDave, _ := identity.NewConsent(asker.key, w.dave.id, w.bob.id, t0, 0)
	shyToBob, _ := identity.NewConsent(shy.key, w.alice.id, w.bob.id, t0, 0)

	// Mallory's own offer to Alice, which Alice never countersigned.
	forgedAtt, _ := identity.MakeOffer(w.mallory.key, w.alice.id, t0, 0)

	type item struct {
		u       user
		att     []byte
		prof    []byte
		consent []byte
	}
	tests := []struct {
		name   string
		items  []item
		target []byte // Bob's attestation, or nil for the real one
		mode   pb.ShareMode
		want   map[peer.ID]pb.Reason
	}{
		{"all valid", []item{{w.carol, nil, nil, nil}, {w.dave, nil, nil, nil}}, nil, pb.ShareMode_ALL_OR_NOTHING, nil},
		{"not a friend: no attestation", []item{{w.carol, nil, nil, nil}, {w.mallory, []byte{}, nil, nil}}, nil, pb.ShareMode_ALL_OR_NOTHING,
			map[peer.ID]pb.Reason{w.mallory.id: pb.Reason_MISSING}},
		{"friendship Alice never signed", []item{{w.mallory, forgedAtt, nil, nil}}, nil, pb.ShareMode_ALL_OR_NOTHING,
			map[peer.ID]pb.Reason{w.mallory.id: pb.Reason_BAD_SIGNATURE}},
		{"someone else's friendship", []item{{w.mallory, mallorySelf, nil, nil}}, nil, pb.ShareMode_ALL_OR_NOTHING,
			map[peer.ID]pb.Reason{w.mallory.id: pb.Reason_WRONG_PAIR}},
		{"expired friendship", []item{{dana, expired.Raw, nil, nil}}, nil, pb.ShareMode_ALL_OR_NOTHING,
			map[peer.ID]pb.Reason{dana.id: pb.Reason_EXPIRED}},
		{"revoked friendship", []item{{gone, goneAtt, nil, nil}}, nil, pb.ShareMode_ALL_OR_NOTHING,
			map[peer.ID]pb.Reason{gone.id: pb.Reason_REVOKED}},
		{"opted out", []item{{shy, shyAtt, shyProfile, nil}}, nil, pb.ShareMode_ALL_OR_NOTHING,
			map[peer.ID]pb.Reason{shy.id: pb.Reason_OPTED_OUT}},
		{"opted out, whatever consent is carried", []item{{shy, shyAtt, shyProfile, shyToBob}}, nil, pb.ShareMode_ALL_OR_NOTHING,
			map[peer.ID]pb.Reason{shy.id: pb.Reason_OPTED_OUT}},
		{"asks first: no consent", []item{{asker, askerAtt, askerProfile, nil}}, nil, pb.ShareMode_ALL_OR_NOTHING,
			map[peer.ID]pb.Reason{asker.id: pb.Reason_OPTED_OUT}},
		{"asks first: consented to this sharer and target", []item{{asker, askerAtt, askerProfile, toBob}}, nil, pb.ShareMode_ALL_OR_NOTHING, nil},
		{"asks first: consent for another target", []item{{asker, askerAtt, askerProfile, toCarol}}, nil, pb.ShareMode_ALL_OR_NOTHING,
			map[peer.ID]pb.Reason{asker.id: pb.Reason_WRONG_PAIR}},
		{"asks first: consent for another sharer", []item{{asker, askerAtt, askerProfile, byDave}}, nil, pb.ShareMode_ALL_OR_NOTHING,
			map[peer.ID]pb.Reason{asker.id: pb.Reason_WRONG_PAIR}},
		{"asks first: someone else's consent", []item{{asker, askerAtt, askerProfile, shyToBob}}, nil, pb.ShareMode_ALL_OR_NOTHING,
			map[peer.ID]pb.Reason{asker.id: pb.Reason_WRONG_PAIR}},
		{"asks first: consent after it expired", []item{{asker, askerAtt, askerProfile, func() []byte {
			c, _ := identity.NewConsent(asker.key, w.alice.id, w.bob.id, t0.Add(-2*time.Hour), time.Hour)
			return c
		}()}}, nil, pb.ShareMode_ALL_OR_NOTHING, map[peer.ID]pb.Reason{asker.id: pb.Reason_EXPIRED}},
		{"target not a friend", []item{{w.carol, nil, nil, nil}}, mallorySelf, pb.ShareMode_ALL_OR_NOTHING,
			map[peer.ID]pb.Reason{w.bob.id: pb.Reason_WRONG_PAIR}},
		{"partial: valid items still go", []item{{w.carol, nil, nil, nil}, {w.mallory, []byte{}, nil, nil}, {dana, expired.Raw, nil, nil}}, nil, pb.ShareMode_PARTIAL,
			map[peer.ID]pb.Reason{w.mallory.id: pb.Reason_MISSING, dana.id: pb.Reason_EXPIRED}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			spec := w.spec([]user{w.bob}, nil)
			spec.Mode = tt.mode
			if tt.target != nil {
				spec.Targets[0].Attestation = tt.target
			}
			for _, it := range tt.items {
				att := it.att
				if att == nil {
					att = w.att[[2]peer.ID{w.alice.id, it.u.id}]
				}
				spec.Items = append(spec.Items, ShareItem{Peer: it.u.id, Name: it.u.name, Attestation: att, Profile: it.prof, Consent: it.consent})
			}
			s, err := BuildShare(w.alice.key, spec)
			if err != nil {
				t.Fatal(err)
			}
			verdict, err := VerifyShare(identity.NewVerifier(identity.WithRevocations(revs)), s, t0, nil)
			if err != nil {
				t.Fatal(err)
			}
			got := map[peer.ID]pb.Reason{}
			for _, f := range verdict.Failures {
				got[f.Peer] = f.Reason
			}
			if len(got) != len(tt.want) {
				t.Fatalf("failures %v, want %v", verdict.Failures, tt.want)
			}
			for p, r := range tt.want {
				if got[p] != r {
					t.Fatalf("failure of %s = %v, want %v (all: %v)", p, got[p], r, verdict.Failures)
				}
			}
			wantRefused := len(tt.want) > 0 && tt.mode == pb.ShareMode_ALL_OR_NOTHING
			if verdict.Refused(tt.mode) != wantRefused {
				t.Fatalf("refused = %v, want %v", verdict.Refused(tt.mode), wantRefused)
			}
			if tt.mode == pb.ShareMode_PARTIAL && len(verdict.Items) != len(tt.items)-len(tt.want) {
				t.Fatalf("partial kept %d items", len(verdict.Items))
			}
		})
	}
}

func TestVerifyShareNewerProfileWins(t *testing.T) {
	w := newWorld(t)
	old, _ := identity.NewProfile(w.carol.key, identity.ProfileInfo{Name: "Carol", Seq: 1}, t0)
	newer, _ := identity.NewProfile(w.carol.key, identity.ProfileInfo{Name: "Carol", Seq: 2, Policy: identity.ShareByNobody}, t0)
	np, _ := identity.NewVerifier().Profile(newer, t0)
	spec := w.spec([]user{w.bob}, []user{w.carol})
	spec.Items[0].Profile = old // the sharer carries a stale profile
	s, _ := BuildShare(w.alice.key, spec)
	verdict, err := VerifyShare(identity.NewVerifier(), s, t0, func(p peer.ID) *identity.Profile {
		if p == w.carol.id {
			return np
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(verdict.Failures) != 1 || verdict.Failures[0].Reason != pb.Reason_OPTED_OUT {
		t.Fatalf("stale profile hid the opt-out: %v", verdict.Failures)
	}
}

func TestVerifyShareBadSeal(t *testing.T) {
	w := newWorld(t)
	good, _ := BuildShare(w.alice.key, w.spec([]user{w.bob}, []user{w.carol}))
	var m pb.Share
	proto.Unmarshal(good.Raw, &m)
	var body pb.ShareBody
	proto.Unmarshal(m.Body, &body)

	reseal := func(edit func(*pb.ShareBody), seal []byte) []byte {
		b := proto.Clone(&body).(*pb.ShareBody)
		edit(b)
		br, _ := proto.Marshal(b)
		if seal == nil {
			seal = m.Seal
		}
		out, _ := proto.Marshal(&pb.Share{Body: br, Seal: seal})
		return out
	}
	// Mallory seals a share naming Alice as the sharer.
	mspec := w.spec([]user{w.bob}, []user{w.carol})
	mal, _ := BuildShare(w.mallory.key, mspec)
	tests := []struct {
		name string
		raw  []byte
		want pb.Reason
	}{
		{"item added after sealing", reseal(func(b *pb.ShareBody) {
			b.Items = append(b.Items, &pb.ShareItem{Peer: []byte(w.dave.id), Attestation: w.att[[2]peer.ID{w.alice.id, w.dave.id}], Salt: make([]byte, 16)})
		}, nil), pb.Reason_BAD_SIGNATURE},
		{"target swapped after sealing", reseal(func(b *pb.ShareBody) { b.Targets[0].Peer = []byte(w.erin.id) }, nil), pb.Reason_BAD_SIGNATURE},
		{"name changed after sealing", reseal(func(b *pb.ShareBody) { b.Items[0].Name = "Eve" }, nil), pb.Reason_BAD_SIGNATURE},
		{"sealed by someone else", reseal(func(*pb.ShareBody) {}, mal.Seal), pb.Reason_WRONG_PAIR},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := DecodeShare(tt.raw, Limits{})
			if err != nil {
				t.Fatal(err)
			}
			_, err = VerifyShare(identity.NewVerifier(), s, t0, nil)
			var se *StatusError
			if !errors.As(err, &se) || se.Status != pb.Status_REFUSED || len(se.Failures) != 1 {
				t.Fatalf("err = %v, want REFUSED with one failure", err)
			}
			if f := se.Failures[0]; f.Peer != w.alice.id || f.Role != pb.Role_SHARER || f.Reason != tt.want {
				t.Fatalf("failure %+v, want sharer %v", f, tt.want)
			}
		})
	}
	// And the seal window: the share expires with its introductions.
	s, _ := DecodeShare(good.Raw, Limits{})
	if _, err := VerifyShare(identity.NewVerifier(), s, t0.Add(DefaultShareValidity), nil); !errors.Is(err, ErrRefused) {
		t.Fatalf("expired share: %v", err)
	}
}

func TestDecodeShareStructure(t *testing.T) {
	w := newWorld(t)
	good, _ := BuildShare(w.alice.key, w.spec([]user{w.bob}, []user{w.carol, w.dave}))
	var m pb.Share
	proto.Unmarshal(good.Raw, &m)
	var body pb.ShareBody
	proto.Unmarshal(m.Body, &body)
	edit := func(f func(*pb.ShareBody)) []byte {
		b := proto.Clone(&body).(*pb.ShareBody)
		f(b)
		br, _ := proto.Marshal(b)
		out, _ := proto.Marshal(&pb.Share{Body: br, Seal: m.Seal})
		return out
	}
	many := func(n int) []*pb.ShareItem {
		var items []*pb.ShareItem
		for range n {
			items = append(items, &pb.ShareItem{Peer: []byte(newUser(t, "x").id), Salt: make([]byte, 16)})
		}
		return items
	}
	tests := []struct {
		name string
		raw  []byte
		lim  Limits
		want error
	}{
		{"valid", good.Raw, Limits{}, nil},
		{"garbage", []byte("\x0a\xff\xff"), Limits{}, ErrBadRequest},
		{"oversized", make([]byte, MaxShareMessage+1), Limits{}, ErrTooLarge},
		{"no seal", func() []byte { out, _ := proto.Marshal(&pb.Share{Body: m.Body}); return out }(), Limits{}, ErrBadRequest},
		{"no target", edit(func(b *pb.ShareBody) { b.Targets = nil }), Limits{}, ErrBadRequest},
		{"no item", edit(func(b *pb.ShareBody) { b.Items = nil }), Limits{}, ErrBadRequest},
		{"item twice", edit(func(b *pb.ShareBody) { b.Items = append(b.Items, b.Items[0]) }), Limits{}, ErrBadRequest},
		{"target also an item", edit(func(b *pb.ShareBody) { b.Items[0].Peer = b.Targets[0].Peer }), Limits{}, ErrBadRequest},
		{"sharer shares themself", edit(func(b *pb.ShareBody) { b.Items[0].Peer = b.Sharer }), Limits{}, ErrBadRequest},
		{"short share id", edit(func(b *pb.ShareBody) { b.ShareId = b.ShareId[:8] }), Limits{}, ErrBadRequest},
		{"bad peer id", edit(func(b *pb.ShareBody) { b.Items[0].Peer = []byte("nope") }), Limits{}, ErrBadRequest},
		{"bad salt", edit(func(b *pb.ShareBody) { b.Items[0].Salt = nil }), Limits{}, ErrBadRequest},
		{"unknown mode", edit(func(b *pb.ShareBody) { b.Mode = 7 }), Limits{}, ErrBadRequest},
		{"name not UTF-8", edit(func(b *pb.ShareBody) { b.Items[0].Name = "\xff" }), Limits{}, ErrBadRequest},
		{"note too long", edit(func(b *pb.ShareBody) { b.Note = string(make([]byte, MaxMessageText+1)) }), Limits{}, ErrTooLarge},
		{"more items than the relay allows", good.Raw, Limits{ItemsPerShare: 1}, ErrTooLarge},
		{"more items than the protocol allows", edit(func(b *pb.ShareBody) { b.Items = many(MaxItemsPerShare + 1) }), Limits{ItemsPerShare: 10000}, ErrTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := DecodeShare(tt.raw, tt.lim)
			if tt.want == nil && err != nil || tt.want != nil && !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
		})
	}
}

// TestConsentIsForOneTarget: a consent names one target, so a share of
// someone who asks first goes to that target alone.
func TestConsentIsForOneTarget(t *testing.T) {
	w := newWorld(t)
	asker := newUser(t, "Asker")
	att := befriend(t, w.alice, asker)
	prof, _ := identity.NewProfile(asker.key, identity.ProfileInfo{Name: "Asker", Policy: identity.ShareAskFirst}, t0)
	toBob, _ := identity.NewConsent(asker.key, w.alice.id, w.bob.id, t0, 0)
	spec := w.spec([]user{w.bob, w.erin}, nil)
	spec.Items = []ShareItem{{Peer: asker.id, Name: "Asker", Attestation: att, Profile: prof, Consent: toBob}}
	s, err := BuildShare(w.alice.key, spec)
	if err != nil {
		t.Fatal(err)
	}
	verdict, err := VerifyShare(identity.NewVerifier(), s, t0, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(verdict.Failures) != 1 || verdict.Failures[0].Reason != pb.Reason_WRONG_PAIR {
		t.Fatalf("a consent for Bob carried to Bob and Erin: %v", verdict.Failures)
	}
}
