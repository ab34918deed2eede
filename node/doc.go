// Package node is the personal Kith node: one per user, holding their
// identity, friends and groups in a go-datastore, talking to rendezvous
// nodes and directly to friends' nodes, and serving the local API that the
// kith CLI and web UI drive.
//
// The decisions are in package book (node/book), its pure core; this
// package is the shell around it: relay sessions, direct adds, presence,
// retries, and the local API over it.
//
// It accepts an injected libp2p host and datastore, so that simnet can run
// hundreds of nodes in one process. It never imports package rendezvous.
package node
