package simnet

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"testing/synctest"
	"time"

	ds "github.com/ipfs/go-datastore"
	dssync "github.com/ipfs/go-datastore/sync"
	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/x/simlibp2p"
	sn "github.com/marcopolo/simnet"

	"github.com/kithnet/kith/identity"
	"github.com/kithnet/kith/node"
	"github.com/kithnet/kith/rendezvous"
)

func mkhost(t *testing.T, nw *sn.Simnet, idx int, key crypto.PrivKey) host.Host {
	addr := fmt.Sprintf("/ip4/%s/udp/8000/quic-v1", sn.IntToPublicIPv4(idx))
	h, err := libp2p.New(libp2p.Identity(key), libp2p.ListenAddrStrings(addr),
		simlibp2p.QUICSimnet(nw, sn.NodeBiDiLinkSettings{
			Downlink: sn.LinkSettings{BitsPerSecond: 20 * simlibp2p.OneMbps},
			Uplink:   sn.LinkSettings{BitsPerSecond: 20 * simlibp2p.OneMbps},
		}),
		libp2p.DisableIdentifyAddressDiscovery(),
		libp2p.ResourceManager(&network.NullResourceManager{}),
	)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func TestProbe(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		nw := &sn.Simnet{LatencyFunc: sn.StaticLatency(10 * time.Millisecond)}
		nw.Start()
		defer nw.Close()
		q := slog.New(slog.NewTextHandler(io.Discard, nil))
		rk, _ := identity.GenerateKey()
		rh := mkhost(t, nw, 0, rk)
		defer rh.Close()
		r, err := rendezvous.New(context.Background(), rh, dssync.MutexWrap(ds.NewMapDatastore()), rendezvous.WithLogger(q))
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		ri := peer.AddrInfo{ID: rh.ID(), Addrs: rh.Addrs()}
		var nodes []*node.Node
		for i := 1; i <= 2; i++ {
			k, _ := identity.GenerateKey()
			h := mkhost(t, nw, i, k)
			defer h.Close()
			n, err := node.New(context.Background(), h, dssync.MutexWrap(ds.NewMapDatastore()), k, node.WithName(fmt.Sprint("n", i)), node.WithRendezvous(ri), node.WithLogger(q))
			if err != nil {
				t.Fatal(err)
			}
			defer n.Close()
			nodes = append(nodes, n)
		}
		start := time.Now()
		for !nodes[0].LoggedIn() || !nodes[1].LoggedIn() {
			time.Sleep(10 * time.Millisecond)
		}
		t.Logf("logged in after %v virtual", time.Since(start))
		id, _ := nodes[0].IDView()
		ctx := context.Background()
		if _, err := nodes[1].AddInvite(ctx, id.Invite, ""); err != nil {
			t.Fatal(err)
		}
		for len(nodes[0].Requests()) == 0 {
			time.Sleep(10 * time.Millisecond)
		}
		if _, err := nodes[0].Accept(ctx, nodes[0].Requests()[0].ID); err != nil {
			t.Fatal(err)
		}
		for len(nodes[1].Friends(ctx)) == 0 {
			time.Sleep(10 * time.Millisecond)
		}
		t.Logf("friends after %v virtual", time.Since(start))
	})
}
