package rendezvous

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"google.golang.org/protobuf/proto"

	"github.com/kithnet/kith/identity"
	identitypb "github.com/kithnet/kith/identity/pb"
	"github.com/kithnet/kith/protocols"
	"github.com/kithnet/kith/protocols/pb"
)

// These attacks are made on introductions, the proof a stranger's friend
// request rests on, as an attacker would make them: hand-made frames sent
// on a host of the attacker's, with keys made for the attack.

// keyOnly is an identity that never runs a host: a sock puppet.
type keyOnly struct {
	key crypto.PrivKey
	id  peer.ID
}

func newKey(t testing.TB) keyOnly {
	k, _ := identity.GenerateKey()
	id, _ := peer.IDFromPrivateKey(k)
	return keyOnly{k, id}
}

// introBy seals, with sealer's key, a share introducing recipient to
// subject with the given attestations (nil: none), and returns the
// introduction recipient would carry. The share itself is never sent.
func introBy(t testing.TB, sealer crypto.PrivKey, recipient, subject peer.ID, recipientAtt, subjectAtt []byte) []byte {
	t.Helper()
	s, err := protocols.BuildShare(sealer, protocols.ShareSpec{CreatedAt: time.Now(),
		Targets: []protocols.ShareTarget{{Peer: recipient, Attestation: recipientAtt}},
		Items:   []protocols.ShareItem{{Peer: subject, Attestation: subjectAtt}}})
	if err != nil {
		t.Fatal(err)
	}
	intro, err := s.Introduction(recipient, subject)
	if err != nil {
		t.Fatal(err)
	}
	return intro
}

// stripProof removes the introducer's friendships from an introduction,
// as a node from before they were required made it.
func stripProof(t testing.TB, intro []byte) []byte {
	var m identitypb.Introduction
	if err := proto.Unmarshal(intro, &m); err != nil {
		t.Fatal(err)
	}
	m.RecipientAttestation, m.SubjectAttestation = nil, nil
	out, _ := proto.Marshal(&m)
	return out
}

// addRequest is from's signed request to `to`, resting on intro or invite.
func addRequest(t testing.TB, from crypto.PrivKey, to peer.ID, intro, invite []byte) *pb.AddRequest {
	t.Helper()
	offer, err := identity.MakeOffer(from, to, time.Now(), 0)
	if err != nil {
		t.Fatal(err)
	}
	req, err := protocols.BuildAddRequest(from, protocols.AddRequestSpec{ID: protocols.NewRequestID(), To: to,
		Offer: offer, Introduction: intro, Invite: invite, CreatedAt: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	return req
}

func combinedFrame(reqs ...*pb.AddRequest) []byte {
	return framed(&pb.AddMessage{Msg: &pb.AddMessage_Combined{Combined: &pb.CombinedAdd{Requests: reqs}}})
}

// sendAdd writes frame raw on proto from u's host and decodes the answer.
func sendAdd(t testing.TB, u *tuser, r *testRelay, id protocol.ID, frame []byte) *pb.AddResponse {
	t.Helper()
	resp, err := protocols.DecodeAddResponse(rawExchange(t.(*testing.T), u.h, r, id, frame))
	if err != nil {
		t.Fatalf("undecodable answer: %v", err)
	}
	return resp
}

// introduceBobToCarol has Alice share Carol with Bob through r and returns
// Bob's introduction to Carol.
func (c *cast) introduceBobToCarol(t testing.TB, r *testRelay) []byte {
	t.Helper()
	s := c.buildShare(t, []*tuser{c.bob}, []*tuser{c.carol})
	if _, err := c.alice.share(r, s.Raw); err != nil {
		t.Fatal(err)
	}
	intro, err := s.Introduction(c.bob.id, c.carol.id)
	if err != nil {
		t.Fatal(err)
	}
	return intro
}

func TestIntroductionAttacks(t *testing.T) {
	r := startRelay(t, nil)
	c := newCast(t)
	bobIntro := c.introduceBobToCarol(t, r)

	puppet := newKey(t)
	puppetMallory := benchAttestation(t, puppet.key, c.mallory.key) // two keys of one person
	ivan := newTUser(t, "Ivan")                                     // Mallory's real friend, not Carol's
	ivanMallory := befriend(t, ivan, c.mallory)
	aliceCarol := c.att[c.carol.id]
	// A friendship "signed by Carol" that Mallory signed twice.
	forgedCarol := func() []byte {
		offer, _ := identity.MakeOffer(puppet.key, c.carol.id, time.Now(), 0)
		return forgeAccepter(t, append([]byte(nil), offer...), c.mallory)
	}()
	mallorysHalf, _ := identity.MakeOffer(c.mallory.key, c.alice.id, time.Now(), 0)

	tests := []struct {
		name   string
		from   *tuser
		id     protocol.ID
		req    *pb.AddRequest
		status pb.Status
		reason pb.Reason
		detail string // in the refusal's words
	}{
		{"sock puppet: a fresh key introduces Mallory to Carol", c.mallory, protocols.AddProtocol,
			addRequest(t, c.mallory.key, c.carol.id, introBy(t, puppet.key, c.mallory.id, c.carol.id, puppetMallory, nil), nil),
			pb.Status_REFUSED, pb.Reason_MISSING, "no proof"},
		{"sock puppet showing Alice's friendship with Carol", c.mallory, protocols.AddProtocol,
			addRequest(t, c.mallory.key, c.carol.id, introBy(t, puppet.key, c.mallory.id, c.carol.id, puppetMallory, aliceCarol), nil),
			pb.Status_REFUSED, pb.Reason_WRONG_PAIR, ""},
		{"sock puppet with a friendship forged in Carol's name", c.mallory, protocols.AddProtocol,
			addRequest(t, c.mallory.key, c.carol.id, introBy(t, puppet.key, c.mallory.id, c.carol.id, puppetMallory, forgedCarol), nil),
			pb.Status_REFUSED, pb.Reason_BAD_SIGNATURE, ""},
		{"Ivan, a real friend of Mallory only, introduces her to Carol", c.mallory, protocols.AddProtocol,
			addRequest(t, c.mallory.key, c.carol.id, introBy(t, ivan.key, c.mallory.id, c.carol.id, ivanMallory, nil), nil),
			pb.Status_REFUSED, pb.Reason_MISSING, ""},
		{"Ivan borrows Alice's friendship with Carol", c.mallory, protocols.AddProtocol,
			addRequest(t, c.mallory.key, c.carol.id, introBy(t, ivan.key, c.mallory.id, c.carol.id, ivanMallory, aliceCarol), nil),
			pb.Status_REFUSED, pb.Reason_WRONG_PAIR, ""},
		{"Alice, a real friend of Carol only, on Mallory's half of a friendship", c.mallory, protocols.AddProtocol,
			addRequest(t, c.mallory.key, c.carol.id, introBy(t, c.alice.key, c.mallory.id, c.carol.id, mallorysHalf, aliceCarol), nil),
			pb.Status_REFUSED, pb.Reason_BAD_SIGNATURE, ""},
		{"Alice, a real friend of Carol only, with no friendship with Mallory", c.mallory, protocols.AddProtocol,
			addRequest(t, c.mallory.key, c.carol.id, introBy(t, c.alice.key, c.mallory.id, c.carol.id, nil, aliceCarol), nil),
			pb.Status_REFUSED, pb.Reason_MISSING, ""},
		{"an introduction of version 1, without the friendships", c.bob, protocols.LegacyAddProtocol,
			addRequest(t, c.bob.key, c.carol.id, stripProof(t, bobIntro), nil),
			pb.Status_REFUSED, pb.Reason_MISSING, "before introductions carried"},
		{"Bob's real introduction, on version 1", c.bob, protocols.LegacyAddProtocol,
			addRequest(t, c.bob.key, c.carol.id, bobIntro, nil), pb.Status_OK, 0, ""},
		{"Bob's real introduction", c.bob, protocols.AddProtocol,
			addRequest(t, c.bob.key, c.carol.id, bobIntro, nil), pb.Status_OK, 0, ""},
	}
	stored := 0
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := sendAdd(t, tt.from, r, tt.id, combinedFrame(tt.req))
			if resp.Status != tt.status {
				t.Fatalf("status %v (%s), want %v", resp.Status, resp.Text, tt.status)
			}
			if len(resp.Results) != 1 {
				t.Fatalf("results %v", resp.Results)
			}
			res := resp.Results[0]
			if tt.status == pb.Status_OK {
				if res.Delivery != pb.Delivery_STORED {
					t.Fatalf("a valid request: %v", res)
				}
				stored++
				return
			}
			if res.Reason != tt.reason || res.Delivery != pb.Delivery_NOT_SENT {
				t.Fatalf("result %v, want reason %v", res, tt.reason)
			}
			if !strings.Contains(res.Detail, "introduction") || !strings.Contains(res.Detail, tt.detail) {
				t.Fatalf("the refusal's words: %q", res.Detail)
			}
		})
	}
	if n := r.Waiting(c.carol.id); n != stored {
		t.Fatalf("carol has %d waiting, want only the %d valid requests", n, stored)
	}

	// The same refusals reach presence: nothing about Carol, who is
	// online, is revealed on a sock puppet's introduction.
	carolIn := c.carol.login(r)
	defer carolIn.Close()
	presenceTests := []struct {
		name   string
		from   *tuser
		intro  []byte
		online bool
		reason pb.Reason
	}{
		{"sock puppet", c.mallory, introBy(t, puppet.key, c.mallory.id, c.carol.id, puppetMallory, nil), false, pb.Reason_MISSING},
		{"sock puppet with a forged friendship", c.mallory, introBy(t, puppet.key, c.mallory.id, c.carol.id, puppetMallory, forgedCarol), false, pb.Reason_BAD_SIGNATURE},
		{"a real friend of Mallory only", c.mallory, introBy(t, ivan.key, c.mallory.id, c.carol.id, ivanMallory, aliceCarol), false, pb.Reason_WRONG_PAIR},
		{"Bob's introduction, asked by Mallory", c.mallory, bobIntro, false, pb.Reason_WRONG_PAIR},
		{"version 1 introduction", c.bob, stripProof(t, bobIntro), false, pb.Reason_MISSING},
		{"Bob's real introduction", c.bob, bobIntro, true, 0},
	}
	for _, tt := range presenceTests {
		t.Run("presence: "+tt.name, func(t *testing.T) {
			q := framed(&pb.PresenceQuery{WantProfiles: true, Asks: []*pb.PresenceAsk{{Peer: []byte(c.carol.id), Introduction: tt.intro}}})
			resp, err := protocols.DecodePresenceResponse(rawExchange(t, tt.from.h, r, protocols.PresenceProtocol, q))
			if err != nil || len(resp.Entries) != 1 {
				t.Fatalf("answer %v %v", resp, err)
			}
			e := resp.Entries[0]
			if e.Online != tt.online || e.Refused != tt.reason {
				t.Fatalf("entry %v, want online %v refused %v", e, tt.online, tt.reason)
			}
			if !tt.online && (len(e.Addrs) > 0 || e.LastSeen != 0 || len(e.Profile) > 0) {
				t.Fatalf("revealed to a stranger: %v", e)
			}
			if tt.online && (len(e.Addrs) == 0 || len(e.Profile) == 0) {
				t.Fatalf("not revealed to the holder of a real introduction: %v", e)
			}
		})
	}
}

// TestStrangersCannotCrowdOutFriends floods an offline victim as the
// issue's attacker did: 8 fresh identities, 64 requests each. With
// introductions they make themselves nothing is stored at all; with the
// victim's own invite (posted publicly, say) the strangers' room fills and
// stops there, and the victim's friend's share is still stored.
func TestStrangersCannotCrowdOutFriends(t *testing.T) {
	const sybils, each = 8, 64
	cfg := DefaultConfig()
	cfg.StrangerItems = 100
	cfg.MailboxItems = 50
	// Only the rooms are measured here: no rate limit interferes.
	cfg.AddRate, cfg.RequestRate, cfg.InviteRate = Rate{1e6, 1e6}, Rate{1e6, 1e6}, Rate{1e6, 1e6}
	r := startRelay(t, nil, WithConfig(cfg))
	c := newCast(t)
	victim := c.bob
	invite, _, _ := identity.NewInvite(victim.key, "Bob", nil, time.Now(), time.Hour)

	var flooders []*tuser
	for i := range sybils {
		flooders = append(flooders, newTUser(t, fmt.Sprint("sybil", i)))
	}
	flood := func(how string, restOn func(f *tuser) (intro, invite []byte)) (stored, full, refused int) {
		t.Helper()
		for _, f := range flooders {
			var reqs []*pb.AddRequest
			for range each {
				intro, inv := restOn(f)
				reqs = append(reqs, addRequest(t, f.key, victim.id, intro, inv))
			}
			resp := sendAdd(t, f, r, protocols.AddProtocol, combinedFrame(reqs...))
			for _, res := range resp.Results {
				switch {
				case res.Delivery == pb.Delivery_STORED:
					stored++
				case res.Reason == pb.Reason_MAILBOX_FULL:
					full++
					if !strings.Contains(res.Detail, "not their friends yet") {
						t.Fatalf("%s: a full strangers' room in other words: %q", how, res.Detail)
					}
				default:
					refused++
				}
			}
		}
		return stored, full, refused
	}

	// Sock puppets: refused before anything is stored.
	stored, full, refused := flood("sock puppets", func(f *tuser) ([]byte, []byte) {
		p := newKey(t)
		return introBy(t, p.key, f.id, victim.id, benchAttestation(t, p.key, f.key), nil), nil
	})
	if stored != 0 || full != 0 || refused != sybils*each || r.Waiting(victim.id) != 0 {
		t.Fatalf("sock puppets: %d stored, %d full, %d refused; %d waiting", stored, full, refused, r.Waiting(victim.id))
	}

	// The victim's invite: the strangers' room fills, and no further.
	stored, full, refused = flood("invite", func(*tuser) ([]byte, []byte) { return nil, invite })
	if stored != cfg.StrangerItems || full != sybils*each-cfg.StrangerItems || refused != 0 {
		t.Fatalf("invite flood: %d stored, %d full, %d refused", stored, full, refused)
	}

	// The victim's friend shares: stored, and the friends' room takes
	// them to its own quota.
	for i := range cfg.MailboxItems {
		resp, err := c.alice.share(r, c.buildShare(t, []*tuser{victim}, []*tuser{c.carol}).Raw)
		if err != nil || delivery(resp, victim.id) != pb.Delivery_STORED {
			t.Fatalf("friend's share %d after the flood: %v %v", i, resp, err)
		}
	}
	if n := r.Waiting(victim.id); n != cfg.StrangerItems+cfg.MailboxItems {
		t.Fatalf("%d waiting, want %d requests and %d shares", n, cfg.StrangerItems, cfg.MailboxItems)
	}

	// The victim logs in and gets every share.
	in := victim.login(r)
	shares := 0
	for range cfg.StrangerItems + cfg.MailboxItems {
		it := next(t, in)
		if it.Kind == pb.ItemKind_SHARE {
			shares++
		}
		in.Ack(it.Seq)
	}
	if shares != cfg.MailboxItems {
		t.Fatalf("the victim got %d of the %d shares", shares, cfg.MailboxItems)
	}
}

// TestRequestRates checks the limits on requests: per invite, whoever
// sends them, and per sender, counting each request of a combined one.
func TestRequestRates(t *testing.T) {
	cfg := DefaultConfig()
	cfg.AddRate = Rate{1e6, 1e6}
	r := startRelay(t, nil, WithConfig(cfg))
	c := newCast(t)
	invite, _, _ := identity.NewInvite(c.bob.key, "Bob", nil, time.Now(), time.Hour)
	other, _, _ := identity.NewInvite(c.bob.key, "Bob", nil, time.Now(), time.Hour)

	// 8 identities x 8 requests on one invite: the invite's burst passes,
	// the rest are THROTTLED, each with words.
	stored, throttled := 0, 0
	for i := range 8 {
		f := newTUser(t, fmt.Sprint("stranger", i))
		var reqs []*pb.AddRequest
		for range 8 {
			reqs = append(reqs, addRequest(t, f.key, c.bob.id, nil, invite))
		}
		for _, res := range sendAdd(t, f, r, protocols.AddProtocol, combinedFrame(reqs...)).Results {
			switch {
			case res.Delivery == pb.Delivery_STORED:
				stored++
			case res.Reason == pb.Reason_THROTTLED && res.Detail != "":
				throttled++
			default:
				t.Fatalf("result %v", res)
			}
		}
	}
	if stored != cfg.InviteRate.Burst || throttled != 64-cfg.InviteRate.Burst {
		t.Fatalf("%d stored, %d throttled", stored, throttled)
	}
	// Another invite of the same user has a bucket of its own.
	resp := sendAdd(t, c.mallory, r, protocols.AddProtocol, combinedFrame(addRequest(t, c.mallory.key, c.bob.id, nil, other)))
	if resp.Status != pb.Status_OK || resp.Results[0].Delivery != pb.Delivery_STORED {
		t.Fatalf("another invite: %v", resp)
	}

	// One sender, many combined messages: past request_rate's burst the
	// whole message is RATE_LIMITED (a node queues it and retries).
	s := c.buildShare(t, []*tuser{c.bob}, []*tuser{c.carol, c.dave, c.erin, c.frank})
	var statuses []pb.Status
	for range 5 {
		var reqs []*pb.AddRequest
		for range protocols.MaxRequestsPerAdd {
			intro, _ := s.Introduction(c.bob.id, c.carol.id)
			reqs = append(reqs, addRequest(t, c.bob.key, c.carol.id, intro, nil))
		}
		statuses = append(statuses, sendAdd(t, c.bob, r, protocols.AddProtocol, combinedFrame(reqs...)).Status)
	}
	want := []pb.Status{pb.Status_OK, pb.Status_OK, pb.Status_OK, pb.Status_OK, pb.Status_RATE_LIMITED}
	if fmt.Sprint(statuses) != fmt.Sprint(want) {
		t.Fatalf("statuses %v, want %v", statuses, want)
	}
}
