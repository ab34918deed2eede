package identity

import (
	"crypto/hkdf"
	"crypto/hpke"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	cryptopb "github.com/libp2p/go-libp2p/core/crypto/pb"
	"golang.org/x/crypto/chacha20poly1305"
	"google.golang.org/protobuf/proto"

	"github.com/kithnet/kith/identity/pb"
)

// Kith's HPKE suite (RFC 9180, base mode): the hybrid post-quantum KEM
// ML-KEM-768 + X25519, so that what is recorded today stays private after
// a quantum computer exists; HKDF-SHA256; ChaCha20-Poly1305.
var (
	encKEM  = hpke.MLKEM768X25519()
	encKDF  = hpke.HKDFSHA256()
	encAEAD = hpke.ChaCha20Poly1305()
)

// Sizes of the encryption records.
const (
	// EncPublicKeySize is the size of an encryption public key.
	EncPublicKeySize = 1216
	// MaxSealedSize caps a Sealed record this package opens.
	MaxSealedSize = 64 << 10
	// SecretSize is the size of a profile key or an invite's secret.
	SecretSize = 32
)

// Errors of sealing and opening. Opening errors wrap ErrCannotOpen.
var (
	// ErrNoEncKey says the recipient has published no encryption key (a
	// profile from an older Kith, or none known), so nothing can be sealed
	// to them.
	ErrNoEncKey = errors.New("identity: no encryption key is known for the recipient")
	// ErrCannotOpen says a sealed record does not open: malformed, sealed
	// to a key the recipient does not hold (any more), or altered.
	ErrCannotOpen = errors.New("identity: cannot open")
)

// EncKeyID names an encryption key or a secret: the first 8 bytes of a
// SHA-256 over a domain and the key. A sealed record carries the id of
// the key it was sealed to, so the recipient knows which key opens it.
type EncKeyID [8]byte

// String returns the id in hex.
func (id EncKeyID) String() string { return hex.EncodeToString(id[:]) }

func keyID(domain string, key []byte) EncKeyID {
	h := sha256.New()
	h.Write([]byte(domain))
	h.Write(key)
	var id EncKeyID
	copy(id[:], h.Sum(nil))
	return id
}

// EncPublicKey is someone's encryption public key, as their profile
// publishes it.
type EncPublicKey struct {
	raw []byte
	pub hpke.PublicKey
	id  EncKeyID
}

// ParseEncPublicKey decodes an encryption public key.
func ParseEncPublicKey(raw []byte) (*EncPublicKey, error) {
	if len(raw) != EncPublicKeySize {
		return nil, fmt.Errorf("identity: encryption key of %d bytes, want %d", len(raw), EncPublicKeySize)
	}
	pub, err := encKEM.NewPublicKey(raw)
	if err != nil {
		return nil, fmt.Errorf("identity: encryption key: %w", err)
	}
	raw = append([]byte(nil), raw...)
	return &EncPublicKey{raw: raw, pub: pub, id: keyID("kith/enc-key-id/v1", raw)}, nil
}

// Bytes returns the key's encoding.
func (k *EncPublicKey) Bytes() []byte { return k.raw }

// ID returns the key's id.
func (k *EncPublicKey) ID() EncKeyID { return k.id }

// EncKey is one of the user's own encryption keys: the private half, with
// when it was made and when it was replaced by a newer one (zero while it
// is the current key).
type EncKey struct {
	priv    hpke.PrivateKey
	pub     *EncPublicKey
	seed    []byte
	Created time.Time
	Retired time.Time
}

// GenerateEncKey makes a new encryption key.
func GenerateEncKey(now time.Time) (*EncKey, error) {
	seed := make([]byte, 32)
	if _, err := rand.Read(seed); err != nil {
		return nil, fmt.Errorf("identity: encryption key: %w", err)
	}
	return EncKeyFromSeed(seed, now)
}

// EncKeyFromSeed restores an encryption key from its 32-byte seed.
func EncKeyFromSeed(seed []byte, created time.Time) (*EncKey, error) {
	if len(seed) != 32 {
		return nil, fmt.Errorf("identity: encryption key seed of %d bytes, want 32", len(seed))
	}
	priv, err := encKEM.NewPrivateKey(seed)
	if err != nil {
		return nil, fmt.Errorf("identity: encryption key: %w", err)
	}
	pub, err := ParseEncPublicKey(priv.PublicKey().Bytes())
	if err != nil {
		return nil, err
	}
	return &EncKey{priv: priv, pub: pub, seed: append([]byte(nil), seed...), Created: created}, nil
}

// Public returns the public half.
func (k *EncKey) Public() *EncPublicKey { return k.pub }

// Seed returns the 32 bytes the key is made from: keep it secret.
func (k *EncKey) Seed() []byte { return k.seed }

// sealInfo is the HPKE info (or the AEAD's associated data) of a sealed
// record: the purpose and what the record is bound to (a share id and
// target, a request id), so that a box cut from one message never opens
// as another.
func sealInfo(purpose string, binding []byte) []byte {
	b := make([]byte, 0, 2*binary.MaxVarintLen64+len("kith/sealed/v1")+len(purpose)+len(binding))
	b = append(b, "kith/sealed/v1"...)
	b = binary.AppendUvarint(b, uint64(len(purpose)))
	b = append(b, purpose...)
	b = binary.AppendUvarint(b, uint64(len(binding)))
	return append(b, binding...)
}

// SealTo seals plaintext to the holder of pub for purpose, bound to
// binding, and returns the Sealed record.
func SealTo(pub *EncPublicKey, purpose string, binding, plaintext []byte) ([]byte, error) {
	if pub == nil {
		return nil, ErrNoEncKey
	}
	box, err := hpke.Seal(pub.pub, encKDF, encAEAD, sealInfo(purpose, binding), plaintext)
	if err != nil {
		return nil, fmt.Errorf("identity: seal: %w", err)
	}
	return proto.Marshal(&pb.Sealed{Key: pub.id[:], Box: box})
}

// SealWithSecret seals plaintext under a secret the recipient made (an
// invite's), for purpose, bound to binding.
func SealWithSecret(secret []byte, purpose string, binding, plaintext []byte) ([]byte, error) {
	if len(secret) != SecretSize {
		return nil, fmt.Errorf("identity: secret of %d bytes, want %d", len(secret), SecretSize)
	}
	aead, err := secretAEAD(secret, purpose)
	if err != nil {
		return nil, err
	}
	nonce := make([]byte, aead.NonceSize(), aead.NonceSize()+len(plaintext)+aead.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	box := aead.Seal(nonce, nonce, plaintext, sealInfo(purpose, binding))
	id := SecretID(secret)
	return proto.Marshal(&pb.Sealed{Key: id[:], Box: box})
}

// SecretID returns the id under which a secret's sealed records name it.
func SecretID(secret []byte) EncKeyID { return keyID("kith/secret-id/v1", secret) }

func secretAEAD(secret []byte, purpose string) (interface {
	NonceSize() int
	Overhead() int
	Seal(dst, nonce, plaintext, ad []byte) []byte
	Open(dst, nonce, ciphertext, ad []byte) ([]byte, error)
}, error) {
	k, err := hkdf.Key(sha256.New, secret, nil, "kith/secret-box/v1/"+purpose, chacha20poly1305.KeySize)
	if err != nil {
		return nil, err
	}
	return chacha20poly1305.NewX(k)
}

// SealedKey returns the id of the key a Sealed record names, without
// opening it.
func SealedKey(sealed []byte) (EncKeyID, error) {
	var m pb.Sealed
	if len(sealed) > MaxSealedSize {
		return EncKeyID{}, fmt.Errorf("%w: sealed record of %d bytes, limit %d", ErrCannotOpen, len(sealed), MaxSealedSize)
	}
	if err := proto.Unmarshal(sealed, &m); err != nil || len(m.Key) != len(EncKeyID{}) || len(m.Box) == 0 {
		return EncKeyID{}, fmt.Errorf("%w: the sealed record is malformed", ErrCannotOpen)
	}
	var id EncKeyID
	copy(id[:], m.Key)
	return id, nil
}

// Keyring holds the keys that open what was sealed to the user: their
// encryption keys, current and retired, and the secrets of their invites.
// It is safe for concurrent reads once filled.
type Keyring struct {
	keys    map[EncKeyID]*EncKey
	secrets map[EncKeyID][]byte
	current *EncKey
}

// NewKeyring returns an empty keyring.
func NewKeyring() *Keyring {
	return &Keyring{keys: map[EncKeyID]*EncKey{}, secrets: map[EncKeyID][]byte{}}
}

// Add adds an encryption key; the newest one not retired becomes current.
func (r *Keyring) Add(k *EncKey) {
	r.keys[k.pub.id] = k
	if k.Retired.IsZero() && (r.current == nil || k.Created.After(r.current.Created)) {
		r.current = k
	}
}

// Remove forgets a key (retired long enough that nothing sealed to it is
// still waiting).
func (r *Keyring) Remove(id EncKeyID) {
	delete(r.keys, id)
	if r.current != nil && r.current.pub.id == id {
		r.current = nil
	}
}

// AddSecret adds an invite's secret.
func (r *Keyring) AddSecret(secret []byte) {
	r.secrets[SecretID(secret)] = append([]byte(nil), secret...)
}

// Current returns the key the user's profile publishes, or nil.
func (r *Keyring) Current() *EncKey { return r.current }

// Keys returns every encryption key held.
func (r *Keyring) Keys() []*EncKey {
	out := make([]*EncKey, 0, len(r.keys))
	for _, k := range r.keys {
		out = append(out, k)
	}
	return out
}

// Open opens a Sealed record made for purpose and binding with the key or
// secret it names. Errors wrap ErrCannotOpen and say why.
func (r *Keyring) Open(purpose string, binding, sealed []byte) ([]byte, error) {
	if r == nil {
		return nil, fmt.Errorf("%w: no keys", ErrCannotOpen)
	}
	var m pb.Sealed
	if len(sealed) > MaxSealedSize {
		return nil, fmt.Errorf("%w: sealed record of %d bytes, limit %d", ErrCannotOpen, len(sealed), MaxSealedSize)
	}
	if err := proto.Unmarshal(sealed, &m); err != nil || len(m.Key) != len(EncKeyID{}) || len(m.Box) == 0 {
		return nil, fmt.Errorf("%w: the sealed record is malformed", ErrCannotOpen)
	}
	var id EncKeyID
	copy(id[:], m.Key)
	info := sealInfo(purpose, binding)
	if k := r.keys[id]; k != nil {
		pt, err := hpke.Open(k.priv, encKDF, encAEAD, info, m.Box)
		if err != nil {
			return nil, fmt.Errorf("%w: it was altered or is not for this message", ErrCannotOpen)
		}
		return pt, nil
	}
	if s := r.secrets[id]; s != nil {
		aead, err := secretAEAD(s, purpose)
		if err != nil {
			return nil, err
		}
		if len(m.Box) < aead.NonceSize()+aead.Overhead() {
			return nil, fmt.Errorf("%w: the sealed record is malformed", ErrCannotOpen)
		}
		pt, err := aead.Open(nil, m.Box[:aead.NonceSize()], m.Box[aead.NonceSize():], info)
		if err != nil {
			return nil, fmt.Errorf("%w: it was altered or is not for this message", ErrCannotOpen)
		}
		return pt, nil
	}
	return nil, fmt.Errorf("%w: sealed to key %s, which this node does not hold (retired, or another user's)", ErrCannotOpen, id)
}

// ProfileKey is the secret that opens a user's profile name. The user
// gives it to each friend (sealed, in a request or an acceptance); the
// relays that store and serve the profile never have it.
type ProfileKey [SecretSize]byte

// NewProfileKey makes a random profile key.
func NewProfileKey() ProfileKey {
	var k ProfileKey
	if _, err := rand.Read(k[:]); err != nil {
		panic("identity: no randomness: " + err.Error())
	}
	return k
}

// ProfileKeyFromBytes checks and copies a profile key.
func ProfileKeyFromBytes(b []byte) (ProfileKey, error) {
	var k ProfileKey
	if len(b) != len(k) {
		return k, fmt.Errorf("identity: profile key of %d bytes, want %d", len(b), len(k))
	}
	copy(k[:], b)
	return k, nil
}

// ID returns the 16 bytes a profile sealed under k names it by.
func (k ProfileKey) ID() []byte {
	id := sha256.Sum256(append([]byte("kith/profile-key-id/v1"), k[:]...))
	return id[:16]
}

// sealText seals a short text under a secret, for purpose, bound to
// binding: nonce || XChaCha20-Poly1305 ciphertext.
func sealText(secret []byte, purpose string, binding []byte, text string) ([]byte, error) {
	aead, err := secretAEAD(secret, purpose)
	if err != nil {
		return nil, err
	}
	nonce := make([]byte, aead.NonceSize(), aead.NonceSize()+len(text)+aead.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	return aead.Seal(nonce, nonce, []byte(text), sealInfo(purpose, binding)), nil
}

func openText(secret []byte, purpose string, binding, box []byte) (string, error) {
	aead, err := secretAEAD(secret, purpose)
	if err != nil {
		return "", err
	}
	if len(box) < aead.NonceSize()+aead.Overhead() {
		return "", fmt.Errorf("%w: the box is malformed", ErrCannotOpen)
	}
	pt, err := aead.Open(nil, box[:aead.NonceSize()], box[aead.NonceSize():], sealInfo(purpose, binding))
	if err != nil {
		return "", fmt.Errorf("%w: wrong key, or the box was altered", ErrCannotOpen)
	}
	return string(pt), nil
}

// StorageSecret derives from the user's identity key the secret that
// seals their other keys at rest (encryption keys, the profile key): they
// are as safe on disk as the identity key's file is.
func StorageSecret(key crypto.PrivKey) ([]byte, error) {
	if key == nil || key.Type() != cryptopb.KeyType_Ed25519 {
		return nil, ErrNotEd25519
	}
	raw, err := key.Raw()
	if err != nil {
		return nil, fmt.Errorf("identity: storage secret: %w", err)
	}
	return hkdf.Key(sha256.New, raw, nil, "kith/node-storage/v1", SecretSize)
}
