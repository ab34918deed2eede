package book

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/kithnet/kith/identity"
)

// The user's keys besides the identity key, one datastore entry each,
// their secret bytes sealed under identity.StorageSecret (so they are as
// safe at rest as the identity key's file):
//
//	/kith/node/keys/profile       storedKey: the profile key
//	/kith/node/keys/enc/<id>      storedKey: an encryption key, current or retired
const (
	keyProfileKey = "/kith/node/keys/profile"
	prefixEncKeys = "/kith/node/keys/enc/"
)

// Encryption keys rotate: a new one is published every EncKeyRotation,
// and a retired one is kept EncKeyRetention longer, past the life of any
// mailbox item or share introduction sealed to it, then deleted, so that
// a later theft of the node's data opens nothing older.
const (
	EncKeyRotation  = 30 * 24 * time.Hour
	EncKeyRetention = 60 * 24 * time.Hour
)

// storedKey is a key at rest.
type storedKey struct {
	Sealed  []byte    `json:"sealed"` // identity Sealed under the storage secret
	Created time.Time `json:"created"`
	Retired time.Time `json:"retired,omitzero"`
}

const purposeStorage = "node-storage"

func (b *Book) wrap(name string, secret []byte, created, retired time.Time) (Mutation, error) {
	sealed, err := identity.SealWithSecret(b.storage, purposeStorage, []byte(name), secret)
	if err != nil {
		return Mutation{}, err
	}
	return put(name, storedKey{Sealed: sealed, Created: created, Retired: retired}), nil
}

func (b *Book) unwrap(name string, value []byte) (*storedKey, []byte, error) {
	var sk storedKey
	if err := json.Unmarshal(value, &sk); err != nil {
		return nil, nil, err
	}
	kr := identity.NewKeyring()
	kr.AddSecret(b.storage)
	secret, err := kr.Open(purposeStorage, []byte(name), sk.Sealed)
	if err != nil {
		return nil, nil, fmt.Errorf("%s does not open with this identity key: %w", name, err)
	}
	return &sk, secret, nil
}

func (b *Book) loadKey(key string, value []byte) error {
	sk, secret, err := b.unwrap(key, value)
	if err != nil {
		return err
	}
	if key == keyProfileKey {
		k, err := identity.ProfileKeyFromBytes(secret)
		if err != nil {
			return err
		}
		b.profileKey = &k
		return nil
	}
	if !strings.HasPrefix(key, prefixEncKeys) {
		return nil
	}
	k, err := identity.EncKeyFromSeed(secret, sk.Created)
	if err != nil {
		return err
	}
	k.Retired = sk.Retired
	b.keys.Add(k)
	return nil
}

// EnsureKeys makes the keys the user lacks (a new node, or one whose data
// predates encryption), rotates the encryption key when it is
// EncKeyRotation old, and deletes retired keys past EncKeyRetention. It
// reports whether the profile must be signed again (a new encryption
// key: the settings' sequence moved on).
func (b *Book) EnsureKeys(now time.Time) (muts []Mutation, resign bool, err error) {
	if b.profileKey == nil {
		k := identity.NewProfileKey()
		m, err := b.wrap(keyProfileKey, k[:], now, time.Time{})
		if err != nil {
			return nil, false, err
		}
		b.profileKey = &k
		muts = append(muts, m)
		resign = true
	}
	cur := b.keys.Current()
	if cur == nil || now.Sub(cur.Created) >= EncKeyRotation {
		k, err := identity.GenerateEncKey(now)
		if err != nil {
			return nil, false, err
		}
		if cur != nil {
			cur.Retired = now
			m, err := b.wrap(prefixEncKeys+cur.Public().ID().String(), cur.Seed(), cur.Created, now)
			if err != nil {
				return nil, false, err
			}
			muts = append(muts, m)
		}
		m, err := b.wrap(prefixEncKeys+k.Public().ID().String(), k.Seed(), now, time.Time{})
		if err != nil {
			return nil, false, err
		}
		b.keys.Add(k)
		muts = append(muts, m)
		resign = true
	}
	for _, k := range b.keys.Keys() {
		if !k.Retired.IsZero() && now.Sub(k.Retired) > EncKeyRetention {
			b.keys.Remove(k.Public().ID())
			muts = append(muts, del(prefixEncKeys+k.Public().ID().String()))
		}
	}
	if resign {
		b.Settings.Seq++
		muts = append(muts, put(keySettings, b.Settings))
	}
	return muts, resign, nil
}

// ProfileInfo is what the user's profile says, the home relays aside: the
// name (sealed under the profile key), the sequence, the policy, the
// current encryption key and the invites withdrawn before they expire.
// EnsureKeys must have run.
func (b *Book) ProfileInfo(now time.Time) identity.ProfileInfo {
	info := identity.ProfileInfo{Name: b.Settings.Name, Seq: b.Settings.Seq, Policy: b.Settings.Policy, ProfileKey: b.profileKey,
		RevokedInvites: b.withdrawnInvites(now)}
	if k := b.keys.Current(); k != nil {
		info.EncKey = k.Public()
	}
	return info
}

// Keys returns the keyring that opens what is sealed to the user.
func (b *Book) Keys() *identity.Keyring { return b.keys }

// encKeyOf returns p's encryption key from the newest profile the book
// holds for them (a friend's, a request's) or from extra (a profile a
// share carries).
func (b *Book) encKeyOf(p peer.ID, extra []byte, now time.Time) (*identity.EncPublicKey, error) {
	var best *identity.Profile
	consider := func(raw []byte) {
		if len(raw) == 0 {
			return
		}
		prof, err := b.verifier.Profile(raw, now.Add(identity.DefaultClockSkew))
		if err == nil && prof.Owner == p && prof.HasEncKey() && (best == nil || prof.Seq > best.Seq) {
			best = prof
		}
	}
	consider(extra)
	if f := b.friends[p]; f != nil {
		consider(f.Profile)
	}
	for _, r := range b.requests {
		if r.Peer == p {
			consider(r.PeerProfile)
		}
	}
	if best == nil {
		return nil, fmt.Errorf("%w: no profile of %s with an encryption key is known (their node may be older than this one)", identity.ErrNoEncKey, b.Name(p))
	}
	return best.EncKey()
}

// nameFrom opens p's name in a signed profile with their profile key, if
// the key is theirs; "" otherwise.
func (b *Book) nameFrom(p peer.ID, profile, key []byte, now time.Time) string {
	if len(profile) == 0 || len(key) == 0 {
		return ""
	}
	prof, err := b.verifier.Profile(profile, now.Add(identity.DefaultClockSkew))
	if err != nil || prof.Owner != p {
		return ""
	}
	k, err := identity.ProfileKeyFromBytes(key)
	if err != nil {
		return ""
	}
	name, err := prof.OpenName(k)
	if err != nil {
		return ""
	}
	return name
}

// opensProfile reports whether key opens the name in p's profile (or the
// profile has no sealed name to check it against).
func (b *Book) opensProfile(p peer.ID, profile []byte, key identity.ProfileKey, now time.Time) bool {
	if len(profile) == 0 {
		return true
	}
	prof, err := b.verifier.Profile(profile, now.Add(identity.DefaultClockSkew))
	if err != nil || prof.Owner != p {
		return false
	}
	return !prof.SealedName() || prof.OpensName(key)
}
