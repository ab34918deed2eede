// Package daemon wires a personal node as `kith up` runs it: the data
// directory (key, config, token), the on-disk datastore (go-ds-pebble with
// synced writes), the libp2p host, the node, and the local API and web
// interface on a loopback address. Init creates a data directory; Up
// starts a daemon on one.
package daemon
