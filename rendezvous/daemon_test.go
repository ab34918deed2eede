package rendezvous

import (
	"context"
	"fmt"
	"net"
	"strings"
	"testing"

	ma "github.com/multiformats/go-multiaddr"
)

// TestRefusesAServedAddress: a relay does not start on a TCP or QUIC port
// another process already serves (go-libp2p's SO_REUSEPORT would let it,
// and users would reach either), and says so.
func TestRefusesAServedAddress(t *testing.T) {
	tl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer tl.Close()
	ul, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ul.Close()
	for _, addr := range []string{
		fmt.Sprintf("/ip4/127.0.0.1/tcp/%d", tl.Addr().(*net.TCPAddr).Port),
		fmt.Sprintf("/ip4/127.0.0.1/udp/%d/quic-v1", ul.LocalAddr().(*net.UDPAddr).Port),
	} {
		t.Run(addr, func(t *testing.T) {
			d, err := OpenDaemon(context.Background(), DaemonOptions{DataDir: t.TempDir(), Listen: []ma.Multiaddr{ma.StringCast(addr)}, Logger: testLogger(t)})
			if err == nil {
				d.Close()
				t.Fatal("started on a served address")
			}
			if !strings.Contains(err.Error(), "another relay, or another program") {
				t.Fatalf("the refusal's words: %v", err)
			}
		})
	}
	// Port 0 (any free one) is always fine.
	if err := listenFree([]ma.Multiaddr{ma.StringCast("/ip4/127.0.0.1/tcp/0"), ma.StringCast("/ip4/127.0.0.1/udp/0/quic-v1")}); err != nil {
		t.Fatal(err)
	}
}
