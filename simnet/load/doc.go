// Package load is a load generator for a real kith-rendezvous: many users,
// each its own libp2p host with its own connection over loopback, sharing,
// storing and draining, or just staying logged in, while the relay's CPU
// time and memory are read from /proc. kith-simnet load runs it.
//
// Identities, friendships and attestations are made before the clock
// starts; shares are sealed by the sharers as they go, as real nodes do.
// Every mode is bounded in time and stops by itself.
package load
