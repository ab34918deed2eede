package book

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	ds "github.com/ipfs/go-datastore"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/kithnet/kith/identity"
	"github.com/kithnet/kith/protocols"
)

// Book is the pure core of a personal node: the user's friends, groups,
// requests, received shares, blocked peers and revocations, and every
// decision about them. Each method takes `now`, changes the book, and
// returns the datastore mutations that make the change durable; the node
// writes them in one batch before it acts on the network. Nothing here does
// I/O. A Book is not safe for concurrent use; the node serialises access.
type Book struct {
	key      crypto.PrivKey
	me       peer.ID
	verifier *identity.Verifier
	revoked  *identity.RevocationSet

	Settings Settings
	friends  map[peer.ID]*Friend
	groups   map[string]*Group
	requests map[protocols.RequestID]*Request
	shares   map[identity.ShareID]*ReceivedShare
	sent     map[identity.ShareID]*SentShare
	blocked  map[peer.ID]bool
	invites  map[string]*Invite    // by token hex
	former   map[peer.ID]time.Time // people who were friends, and when it ended
	asks     map[string]*Ask       // by askKey

	profileStale bool               // see TakeProfileStale
	names        map[peer.ID]string // names learnt from shares and requests

	revokeQueue map[identity.AttestationID][]byte
	myProfile   []byte // the user's current signed profile, sent with requests and answers

	keys       *identity.Keyring    // opens what is sealed to the user
	profileKey *identity.ProfileKey // seals the user's profile name; given to friends
	storage    []byte               // seals keys at rest (identity.StorageSecret)
}

// SetProfile sets the user's signed profile, which requests and answers
// carry so that the other side learns the user's home relays.
func (b *Book) SetProfile(raw []byte) { b.myProfile = raw }

// Profile returns the user's current signed profile (nil before
// SetProfile).
func (b *Book) Profile() []byte { return b.myProfile }

// Counts is what the book holds, in numbers, for a status line.
type Counts struct {
	Friends int
	Shares  int // received
	Pending int // incoming requests waiting for an answer
	Queued  int // requests, answers, shares and revocations waiting to be sent
}

// Counts returns what the book holds, in numbers.
func (b *Book) Counts(now time.Time) Counts {
	c := Counts{Friends: len(b.friends), Shares: len(b.shares)}
	for _, r := range b.requests {
		if r.StateAt(now) == Pending && r.Direction == Incoming {
			c.Pending++
		}
	}
	reqs, answers := b.Unsent(now)
	c.Queued = len(reqs) + len(answers) + len(b.UnansweredShares()) + len(b.revokeQueue)
	return c
}

// ResolveKnown is ResolvePeer among everyone the book has a name for:
// friends, the people in requests and shares.
func (b *Book) ResolveKnown(s string) (peer.ID, error) { return b.ResolvePeer(s, b.names) }

// Mutation is one datastore write a Book asks for.
type Mutation struct {
	Key   ds.Key
	Value []byte
	Del   bool
}

// Datastore layout of a node, values JSON unless noted:
//
//	/kith/node/settings               Settings
//	/kith/node/friends/<peer>         Friend
//	/kith/node/groups/<name hex>      Group
//	/kith/node/requests/<id>          Request
//	/kith/node/shares/<id>            ReceivedShare
//	/kith/node/sent/<id>              SentShare
//	/kith/node/blocked/<peer>         {}
//	/kith/node/invites/<token>        Invite
//	/kith/node/revoked/<attestation>  identity revocation bytes (raw)
//	/kith/node/former/<peer>          the time the friendship ended (RFC 3339 text)
//	/kith/node/asks/<in|out>/<id>     Ask ("ask me first")
//	/kith/node/keys/...               the user's keys (see keys.go)
const (
	keySettings     = "/kith/node/settings"
	prefixFriends   = "/kith/node/friends/"
	prefixGroups    = "/kith/node/groups/"
	prefixRequests  = "/kith/node/requests/"
	prefixShares    = "/kith/node/shares/"
	prefixSent      = "/kith/node/sent/"
	prefixBlocked   = "/kith/node/blocked/"
	prefixInvites   = "/kith/node/invites/"
	prefixRevoked   = "/kith/node/revoked/"
	prefixFormer    = "/kith/node/former/"
	groupNameMaxLen = identity.MaxNameBytes
)

func put(key string, v any) Mutation {
	b, err := json.Marshal(v)
	if err != nil {
		panic("node: marshal " + key + ": " + err.Error()) // only our own records
	}
	return Mutation{Key: ds.RawKey(key), Value: b}
}

func del(key string) Mutation { return Mutation{Key: ds.RawKey(key), Del: true} }

func groupKey(name string) string { return prefixGroups + fmt.Sprintf("%x", name) }

// NewBook returns an empty book for the holder of key.
func NewBook(key crypto.PrivKey, name string) (*Book, error) {
	me, err := peer.IDFromPrivateKey(key)
	if err != nil {
		return nil, err
	}
	storage, err := identity.StorageSecret(key)
	if err != nil {
		return nil, err
	}
	revoked := identity.NewRevocationSet()
	return &Book{
		key: key, me: me, revoked: revoked, keys: identity.NewKeyring(), storage: storage,
		verifier: identity.NewVerifier(identity.WithRevocations(revoked)),
		Settings: Settings{Name: name, Seq: 1},
		friends:  map[peer.ID]*Friend{}, groups: map[string]*Group{},
		requests: map[protocols.RequestID]*Request{}, shares: map[identity.ShareID]*ReceivedShare{},
		sent: map[identity.ShareID]*SentShare{}, blocked: map[peer.ID]bool{},
		invites: map[string]*Invite{}, names: map[peer.ID]string{}, former: map[peer.ID]time.Time{}, asks: map[string]*Ask{},
		revokeQueue: map[identity.AttestationID][]byte{},
	}, nil
}

// Me returns the user's peer id.
func (b *Book) Me() peer.ID { return b.me }

// Verifier returns the book's verifier (it knows the book's revocations).
func (b *Book) Verifier() *identity.Verifier { return b.verifier }

// Load restores one stored record; the node calls it for every entry at
// start. Unknown keys are ignored.
func (b *Book) Load(key string, value []byte) error {
	switch {
	case key == keySettings:
		return json.Unmarshal(value, &b.Settings)
	case key == keyProfileKey || strings.HasPrefix(key, prefixEncKeys):
		return b.loadKey(key, value)
	case strings.HasPrefix(key, prefixFriends):
		var f Friend
		if err := json.Unmarshal(value, &f); err != nil {
			return err
		}
		b.friends[f.ID] = &f
		b.names[f.ID] = f.Name
	case strings.HasPrefix(key, prefixGroups):
		var g Group
		if err := json.Unmarshal(value, &g); err != nil {
			return err
		}
		b.groups[g.Name] = &g
	case strings.HasPrefix(key, prefixRequests):
		var r Request
		if err := json.Unmarshal(value, &r); err != nil {
			return err
		}
		b.requests[r.ID] = &r
		if r.Name != "" {
			b.names[r.Peer] = r.Name
		}
	case strings.HasPrefix(key, prefixShares):
		var s ReceivedShare
		if err := json.Unmarshal(value, &s); err != nil {
			return err
		}
		u, err := protocols.DecodeShare(s.Raw, protocols.Limits{})
		if err != nil {
			return err
		}
		u.Reveal(s.Secret)
		s.Items, s.decoded = u.Items, u
		b.shares[s.ID] = &s
		b.learnNames(u.Items)
	case strings.HasPrefix(key, prefixSent):
		var s SentShare
		if err := json.Unmarshal(value, &s); err != nil {
			return err
		}
		b.sent[s.ID] = &s
	case strings.HasPrefix(key, prefixBlocked):
		id, err := peer.Decode(strings.TrimPrefix(key, prefixBlocked))
		if err != nil {
			return err
		}
		b.blocked[id] = true
	case strings.HasPrefix(key, prefixInvites):
		var in Invite
		if err := json.Unmarshal(value, &in); err != nil {
			return err
		}
		b.invites[strings.TrimPrefix(key, prefixInvites)] = &in
		if len(in.Secret) > 0 {
			b.keys.AddSecret(in.Secret)
		}
	case strings.HasPrefix(key, prefixAsks):
		return b.loadAsk(value)
	case strings.HasPrefix(key, prefixFormer):
		id, err := peer.Decode(strings.TrimPrefix(key, prefixFormer))
		if err != nil {
			return err
		}
		at, err := time.Parse(time.RFC3339, string(value))
		if err != nil {
			return err
		}
		b.former[id] = at
	case strings.HasPrefix(key, prefixRevokeQueue):
		r, err := b.verifier.Revocation(value)
		if err != nil {
			return err
		}
		b.revokeQueue[r.AttestationID] = value
	case strings.HasPrefix(key, prefixRevoked):
		r, err := b.verifier.Revocation(value)
		if err != nil {
			return err
		}
		b.revoked.Add(r)
	}
	return nil
}
