// Package simnet runs whole Kith networks (many personal nodes and
// rendezvous relays, built from the real node and rendezvous packages) in
// simulated time, to test and measure the system at a scale no one can
// assemble by hand.
package simnet
