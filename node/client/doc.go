// Package client is the typed client of a running daemon's local API, as
// the kith CLI uses it: it finds the daemon through the data directory
// (InfoFile, TokenFile) and returns the API's views and errors as Go
// values.
package client
