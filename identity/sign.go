package identity

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"time"

	"github.com/hdevalence/ed25519consensus"
	"github.com/libp2p/go-libp2p/core/crypto"
	cryptopb "github.com/libp2p/go-libp2p/core/crypto/pb"
	"github.com/libp2p/go-libp2p/core/peer"
	"google.golang.org/protobuf/proto"

	"github.com/kithnet/kith/identity/pb"
)

// Signature domains. A signature made for one record type never verifies as
// another: the domain is part of the signed bytes.
const (
	DomainProfile     = "kith/profile/v1"
	DomainAttestation = "kith/attestation/v1"
	DomainRevocation  = "kith/revocation/v1"
	DomainSeal        = "kith/seal/v1"
)

// MaxRecordSize caps the encoded size of any signed record this package
// decodes. Bigger input is refused as malformed before it is parsed.
const MaxRecordSize = 16 << 10

// DefaultClockSkew is how far in the future a record's issue time may be
// before it is refused as not yet valid.
const DefaultClockSkew = 5 * time.Minute

// signingBytes lays out what is signed, after libp2p's signed envelopes:
// uvarint(len(domain)) || domain || uvarint(len(body)) || body.
func signingBytes(domain string, body []byte) []byte {
	b := make([]byte, 0, 2*binary.MaxVarintLen64+len(domain)+len(body))
	b = binary.AppendUvarint(b, uint64(len(domain)))
	b = append(b, domain...)
	b = binary.AppendUvarint(b, uint64(len(body)))
	return append(b, body...)
}

// sign signs body in domain with key, which must be Ed25519.
func sign(key crypto.PrivKey, domain string, body []byte) ([]byte, error) {
	if key == nil || key.Type() != cryptopb.KeyType_Ed25519 {
		return nil, ErrNotEd25519
	}
	sig, err := key.Sign(signingBytes(domain, body))
	if err != nil {
		return nil, fmt.Errorf("identity: sign %s: %w", domain, err)
	}
	return sig, nil
}

// verifySig checks sig over body in domain by pub. It uses
// ed25519consensus (ZIP-215 rules) so that single and batch verification
// agree on every input.
func verifySig(pub ed25519.PublicKey, domain string, body, sig []byte) bool {
	if len(sig) != ed25519.SignatureSize || len(pub) != ed25519.PublicKeySize {
		return false
	}
	return ed25519consensus.Verify(pub, signingBytes(domain, body), sig)
}

// ed25519IDPrefix begins the canonical peer id of every Ed25519 key: an
// identity multihash (0x00) of 36 bytes holding the protobuf PublicKey
// {Type: Ed25519, Data: 32 bytes}.
const ed25519IDPrefix = "\x00\x24\x08\x01\x12\x20"

// ed25519IDLen is the length of such an id.
const ed25519IDLen = len(ed25519IDPrefix) + ed25519.PublicKeySize

// PublicKey returns the Ed25519 public key embedded in id. Kith users are
// Ed25519 keys, whose peer ids inline the key; any other id is refused.
// The canonical form is read in place (every share names several peers,
// and unmarshalling each key was a visible part of a relay's work); any
// other form goes through libp2p's decoder, as before.
func PublicKey(id peer.ID) (ed25519.PublicKey, error) {
	if len(id) == ed25519IDLen && string(id[:len(ed25519IDPrefix)]) == ed25519IDPrefix {
		return ed25519.PublicKey(id[len(ed25519IDPrefix):]), nil
	}
	pk, err := id.ExtractPublicKey()
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrNotEd25519, err)
	}
	if pk.Type() != cryptopb.KeyType_Ed25519 {
		return nil, ErrNotEd25519
	}
	raw, err := pk.Raw()
	if err != nil || len(raw) != ed25519.PublicKeySize {
		return nil, ErrNotEd25519
	}
	return ed25519.PublicKey(raw), nil
}

// openRecord is the start of every decoder: raw must be given, within
// MaxRecordSize, and decode as msg. missing names what was not given.
func openRecord(record, missing string, raw []byte, msg proto.Message) error {
	if len(raw) == 0 {
		return fail(record, ReasonMissing, "no %s given", missing)
	}
	if len(raw) > MaxRecordSize {
		return fail(record, ReasonMalformed, "%d bytes, limit %d", len(raw), MaxRecordSize)
	}
	if err := proto.Unmarshal(raw, msg); err != nil {
		return malformed(record, err, "")
	}
	return nil
}

// openSigned opens raw as a SignedRecord whose body decodes as body.
func openSigned(record, missing string, raw []byte, body proto.Message) (*pb.SignedRecord, error) {
	var sr pb.SignedRecord
	if err := openRecord(record, missing, raw, &sr); err != nil {
		return nil, err
	}
	if err := proto.Unmarshal(sr.Body, body); err != nil {
		return nil, malformed(record, err, "body")
	}
	return &sr, nil
}

// PeerFromBytes decodes the binary form of an Ed25519 user's peer id,
// refusing any other kind of id.
func PeerFromBytes(b []byte) (peer.ID, error) {
	id, _, err := parsePeer(b)
	return id, err
}

// parsePeer decodes a peer id from its binary form and checks that it is an
// Ed25519 key.
func parsePeer(b []byte) (peer.ID, ed25519.PublicKey, error) {
	if len(b) == ed25519IDLen && string(b[:len(ed25519IDPrefix)]) == ed25519IDPrefix {
		id := peer.ID(b)
		return id, ed25519.PublicKey(id[len(ed25519IDPrefix):]), nil
	}
	id, err := peer.IDFromBytes(b)
	if err != nil {
		return "", nil, err
	}
	pub, err := PublicKey(id)
	if err != nil {
		return "", nil, err
	}
	return id, pub, nil
}

func unix(t time.Time) int64 { return t.Unix() }

func fromUnix(s int64) time.Time { return time.Unix(s, 0).UTC() }

// digest is a SHA-256 hash.
type digest = [sha256.Size]byte

// SignBody signs body for domain with key, using the same layout as every
// record in this package. Other packages use it for their own signed
// messages (add requests), each with its own domain.
func SignBody(key crypto.PrivKey, domain string, body []byte) ([]byte, error) {
	return sign(key, domain, body)
}

// VerifyBody checks that signer signed body for domain. It returns a
// *VerifyError (ReasonMalformed for a signer that is not an Ed25519 peer id,
// ReasonBadSignature otherwise).
func VerifyBody(record string, signer peer.ID, domain string, body, sig []byte) error {
	pub, err := PublicKey(signer)
	if err != nil {
		return malformed(record, err, "signer")
	}
	if !verifySig(pub, domain, body, sig) {
		return fail(record, ReasonBadSignature, "%s did not sign it", ShortID(signer))
	}
	return nil
}

// ShortID abbreviates a peer id for messages people read: the first and
// last six characters of its text form.
func ShortID(p peer.ID) string {
	s := p.String()
	if len(s) <= 16 {
		return s
	}
	return s[:6] + "…" + s[len(s)-6:]
}
