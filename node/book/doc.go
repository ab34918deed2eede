// Package book is the pure core of a personal Kith node: the user's
// friends, groups, invites, sent and received shares, requests in and out,
// blocked peers, profiles, home relays and revocations, and every decision
// about them (what a received share means, which picks become requests,
// whether a request is shown or dropped, what an answer makes).
//
// Each operation takes its inputs and `now`, changes the book, and returns
// the datastore mutations that make the change durable; the node writes
// them in one batch before it acts on the network. Nothing here does I/O:
// the package imports no libp2p host or network and no HTTP (the layering
// test enforces it), and its tests drive it with no network at all.
package book
