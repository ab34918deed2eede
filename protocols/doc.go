// Package protocols defines Kith's wire protocols: their ids, messages,
// framing, limits, status codes, and the rules that decide what a share or an
// add request means.
//
// Conventions, after libp2p's own protocols:
//
//   - One protocol id per exchange: ShareProtocol, InboxProtocol,
//     AddProtocol, PresenceProtocol, RevokeProtocol, plus the gossipsub
//     RevocationTopic between relays.
//   - Messages are protobuf (pb/kith.proto, generated code committed), each
//     framed as uvarint(length) || bytes. Reader refuses a frame longer than
//     its per-protocol limit before reading it.
//   - Every request/response stream has StreamDeadline; the long-lived inbox
//     stream has FrameDeadline per frame.
//   - Every response carries a pb.Status. StatusError is its Go form, with a
//     sentinel per status (errors.Is(err, ErrRefused)) and the failures it
//     named; StatusOf maps any error back to the status that reports it.
//     Per-id failures carry a pb.Reason that maps one to one onto
//     identity.Reason.
//   - Signed records (attestations, seals, introductions, revocations,
//     profiles) travel as opaque bytes and are verified, stored and forwarded
//     as received.
//
// The share is the patent's "uplink share command": a ShareBody (sharer,
// targets with the sharer<->target attestations, items with the
// sharer<->item attestations) sealed by the sharer with one signature over
// the body and every introduction it implies (see identity). The relay
// forwards the very same bytes downlink. VerifyShare is the check both the
// relay and the target make; DecodeShare, DecodeAddMessage and the other
// Decode functions are the structural checks every received frame passes
// first, and each has a fuzz test.
package protocols
