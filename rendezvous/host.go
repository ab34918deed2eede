package rendezvous

import (
	"fmt"
	"time"

	"github.com/kithnet/kith/protocols"
	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/crypto"
	rcmgr "github.com/libp2p/go-libp2p/p2p/host/resource-manager"
	"github.com/libp2p/go-libp2p/p2p/net/connmgr"
	ma "github.com/multiformats/go-multiaddr"
)

// HostOptions returns the libp2p options for a relay's own host: its key
// and listen addresses, a resource manager sized from cfg (libp2p's
// defaults cap inbound connections near 250 on a small machine, far below
// what a relay serves), a connection manager that keeps up to
// cfg.MaxConnections peers (logged-in users are protected from trimming),
// and public reachability so that identify and the circuit relay service
// treat it as the public node it is.
func HostOptions(key crypto.PrivKey, listen []ma.Multiaddr, cfg Config) ([]libp2p.Option, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	n := cfg.MaxConnections
	mem := cfg.MemoryBudgetMiB() << 20
	limits := rcmgr.PartialLimitConfig{
		System: rcmgr.ResourceLimits{
			Conns: rcmgr.LimitVal(n + 256), ConnsInbound: rcmgr.LimitVal(n), ConnsOutbound: rcmgr.LimitVal(256),
			Streams: rcmgr.LimitVal(8 * n), StreamsInbound: rcmgr.LimitVal(8 * n), StreamsOutbound: rcmgr.LimitVal(2 * n),
			FD: rcmgr.LimitVal(n + 1024), Memory: rcmgr.LimitVal64(mem),
		},
		Transient: rcmgr.ResourceLimits{
			Conns: rcmgr.LimitVal(n/4 + 64), ConnsInbound: rcmgr.LimitVal(n/4 + 64), ConnsOutbound: rcmgr.LimitVal(64),
			Streams: rcmgr.LimitVal(n/2 + 256), StreamsInbound: rcmgr.LimitVal(n/2 + 256), StreamsOutbound: rcmgr.LimitVal(256),
			FD: rcmgr.LimitVal(n/4 + 64), Memory: rcmgr.LimitVal64(mem / 8),
		},
		PeerDefault: rcmgr.ResourceLimits{
			Streams: rcmgr.LimitVal(cfg.MaxStreamsPerPeer), StreamsInbound: rcmgr.LimitVal(cfg.MaxStreamsPerPeer),
			StreamsOutbound: rcmgr.LimitVal(cfg.MaxStreamsPerPeer), Conns: rcmgr.LimitVal(8), ConnsInbound: rcmgr.LimitVal(8),
			Memory: rcmgr.LimitVal64(16 << 20),
		},
		// Every logged-in user holds an inbox stream for hours: the
		// protocol scope must allow one per user (libp2p's default allows
		// about 1,300 on this machine).
		ProtocolDefault: rcmgr.ResourceLimits{
			Streams: rcmgr.LimitVal(8 * n), StreamsInbound: rcmgr.LimitVal(8 * n), StreamsOutbound: rcmgr.LimitVal(2 * n),
			Memory: rcmgr.LimitVal64(mem / 2),
		},
		Service: map[string]rcmgr.ResourceLimits{
			ServiceName: {Streams: rcmgr.LimitVal(8 * n), StreamsInbound: rcmgr.LimitVal(8 * n), Memory: rcmgr.LimitVal64(mem / 2)},
		},
		ServicePeer: map[string]rcmgr.ResourceLimits{
			ServiceName: {Streams: rcmgr.LimitVal(cfg.MaxStreamsPerPeer), StreamsInbound: rcmgr.LimitVal(cfg.MaxStreamsPerPeer), Memory: rcmgr.LimitVal64(8 << 20)},
		},
	}
	rm, err := rcmgr.NewResourceManager(rcmgr.NewFixedLimiter(limits.Build(rcmgr.DefaultLimits.AutoScale())))
	if err != nil {
		return nil, fmt.Errorf("rendezvous: resource manager: %w", err)
	}
	cm, err := connmgr.NewConnManager(n*9/10, n, connmgr.WithGracePeriod(time.Minute))
	if err != nil {
		return nil, fmt.Errorf("rendezvous: connection manager: %w", err)
	}
	return []libp2p.Option{
		libp2p.Identity(key),
		libp2p.UserAgent(protocols.AgentVersion("kith-rendezvous")), // what identify tells peers
		libp2p.ListenAddrs(listen...),
		libp2p.ResourceManager(rm),
		libp2p.ConnectionManager(cm),
		libp2p.ForceReachabilityPublic(),
		libp2p.EnableRelay(),
		// Nodes that let AutoNAT decide their reachability (reachability
		// "auto") ask their relay to dial them back.
		libp2p.EnableNATService(),
		libp2p.EnableAutoNATv2(),
	}, nil
}
