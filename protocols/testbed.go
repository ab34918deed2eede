package protocols

import (
	"net"
	"os"
	"slices"

	manet "github.com/multiformats/go-multiaddr/net"
)

// TestbedEnv names the environment variable that makes the binaries take
// the IPv4 documentation ranges (192.0.2.0/24, 198.51.100.0/24,
// 203.0.113.0/24) for public addresses. libp2p counts them unroutable, so
// it would neither advertise a relay or an observed address in them nor
// hole-punch to them; a test bed in network namespaces (node/nat) uses
// them as its "internet" precisely because they reach nothing real.
const TestbedEnv = "KITH_TESTBED_DOCNETS_PUBLIC"

// documentation are the IPv4 documentation ranges (RFC 5737).
var documentation = []string{"192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24"}

// ApplyTestbedEnv makes the documentation ranges public when TestbedEnv is
// set to 1, and reports whether it did. It must run before any host
// starts: it changes go-multiaddr's table of unroutable ranges.
func ApplyTestbedEnv() bool {
	if os.Getenv(TestbedEnv) != "1" {
		return false
	}
	manet.Unroutable4 = slices.DeleteFunc(manet.Unroutable4, func(n *net.IPNet) bool {
		return slices.Contains(documentation, n.String())
	})
	return true
}
