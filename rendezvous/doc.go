// Package rendezvous is the Kith relay, the patent's "server" rebuilt for a
// peer-to-peer network: it verifies signed friendship attestations and share
// seals before relaying a share, stores and forwards for users who are
// offline, fans out combined add requests, answers presence queries for
// friends only, and spreads revocations to other relays.
//
// It accepts an injected libp2p host and datastore, so that tests and
// simnet can run many relays in one process. It never imports package node.
package rendezvous
