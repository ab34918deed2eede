// Package api is a personal node's local HTTP API and web interface,
// served on a loopback address by the daemon: every route needs the token
// kept in the data directory, requests from other origins are refused, and
// a request addressed to any other host name is answered 421
// (LocalHostOnly). Handlers only translate between HTTP and a Node, the
// narrow interface *node.Node implements, so they are tested with httptest
// and a fake.
package api
