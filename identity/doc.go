// Package identity is who Kith users are and what they can prove.
//
// A user is an Ed25519 libp2p key and their peer id is their user id (the
// patent's UIN). The key file is written with mode 0600 and may be sealed
// with a passphrase (Argon2id + XChaCha20-Poly1305), the peer-to-peer form of
// the patent's password login.
//
// Everything a relay or a node must believe without trusting anyone is a
// signed record here:
//
//   - Profile: the owner's display name, home relays, sequence number and
//     sharing policy (may friends share me, or nobody).
//   - Attestation: "P and Q are friends from T until U", the same body bytes
//     signed by both. The requester's half alone is an offer; the accepter
//     countersigns it. Its id is the SHA-256 of the body.
//   - Revocation: either friend ends an attestation (unfriend). It embeds the
//     attestation's body so anyone can check the revoker is a party.
//   - Seal and Introduction: the sharer signs one Merkle root per share over
//     the share body and one leaf per (target, shared friend) pair. An
//     Introduction is one leaf with its inclusion path: the shared friend C
//     checks with the sharer A's key alone that A introduced B to C, and
//     learns nothing else about the share. One signature proves every
//     introduction of a share.
//
// Signatures cover a domain string and the exact body bytes
// (uvarint-length-prefixed, as in libp2p's signed envelopes), so a signature
// for one record type never verifies as another; readers verify and forward
// the bytes they received, never a re-encoding. Verification uses
// ed25519consensus (ZIP-215) so single and batch checks agree.
//
// Verification never answers with a bare bool: every failure is a
// *VerifyError carrying a Reason (malformed, bad signature, wrong pair, not
// yet valid, expired, revoked, opted out, missing) that protocols carries on
// the wire and the user reads. A Verifier caches records whose signatures it
// has checked, so a relay pays once for an attestation it sees in many
// shares; time, pair and revocation are checked on every use.
//
// This package imports no networking: only libp2p's core/crypto and
// core/peer, multiaddr, and the standard library.
package identity
