package rendezvous

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	circuit "github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/client"
	ma "github.com/multiformats/go-multiaddr"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/kithnet/kith/protocols"
	"github.com/kithnet/kith/protocols/pb"
)

// TestCircuitRelayForRegisteredUsers: a user logged in at the relay can
// reserve a slot and be reached through it by another registered user,
// the way a node behind NAT is reached; a stranger can do neither.
func TestCircuitRelayForRegisteredUsers(t *testing.T) {
	reg := prometheus.NewRegistry()
	r := startRelay(t, nil, WithRegisterer(reg))
	c := newCast(t)
	relayInfo := peer.AddrInfo{ID: r.h.ID(), Addrs: r.h.Addrs()}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	if _, err := circuit.Reserve(ctx, c.mallory.h, relayInfo); err == nil {
		t.Fatal("a stranger reserved a slot")
	}
	c.carol.login(r)
	if _, err := circuit.Reserve(ctx, c.carol.h, relayInfo); err != nil {
		t.Fatalf("carol's reservation: %v", err)
	}
	// Carol answers a test protocol; Bob reaches her only through the relay.
	c.carol.h.SetStreamHandler("/kith/test-echo/1.0.0", func(s network.Stream) {
		buf := make([]byte, 5)
		s.Read(buf)
		s.Write(buf)
		s.Close()
	})
	circuitAddr := ma.StringCast(r.h.Addrs()[0].String() + "/p2p/" + r.h.ID().String() + "/p2p-circuit")
	dial := func(u *tuser) error {
		u.h.Peerstore().AddAddrs(c.carol.id, []ma.Multiaddr{circuitAddr}, time.Minute)
		if err := u.h.Connect(ctx, peer.AddrInfo{ID: c.carol.id, Addrs: []ma.Multiaddr{circuitAddr}}); err != nil {
			return err
		}
		s, err := u.h.NewStream(network.WithAllowLimitedConn(ctx, "test"), c.carol.id, "/kith/test-echo/1.0.0")
		if err != nil {
			return err
		}
		defer s.Close()
		s.Write([]byte("hello"))
		buf := make([]byte, 5)
		if _, err := s.Read(buf); err != nil {
			return err
		}
		if string(buf) != "hello" {
			return errors.New("echo mismatch")
		}
		return nil
	}
	c.bob.login(r)
	if err := dial(c.bob); err != nil {
		t.Fatalf("bob through the relay: %v", err)
	}
	for _, conn := range c.bob.h.Network().ConnsToPeer(c.carol.id) {
		if !conn.Stat().Limited {
			t.Fatalf("bob has a direct connection to carol; the test must go through the relay")
		}
	}
	if err := dial(c.mallory); err == nil {
		t.Fatal("a stranger reached carol through the relay")
	}
	// The operator sees the circuits: libp2p's relay service metrics are
	// on the relay's registry.
	if got := sumMetric(t, reg, "libp2p_relaysvc_data_transferred_bytes_total"); got < 10 {
		t.Errorf("%v bytes relayed, want the echo's", got)
	}
}

// sumMetric adds up every series of the metric name on reg.
func sumMetric(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			var v float64
			for _, m := range mf.GetMetric() {
				v += m.GetCounter().GetValue() + m.GetGauge().GetValue()
			}
			return v
		}
	}
	t.Fatalf("no %s on the registry", name)
	return 0
}

func TestConfigFile(t *testing.T) {
	dir := t.TempDir()
	write := func(s string) string {
		p := filepath.Join(dir, "c.json")
		os.WriteFile(p, []byte(s), 0o644)
		return p
	}
	cfg, err := LoadConfig(write(`{"mailbox_items": 50, "mailbox_ttl": "48h", "share_rate": {"per_second": 5, "burst": 10}}`))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.MailboxItems != 50 || cfg.MailboxTTL.D() != 48*time.Hour || cfg.ShareRate.Burst != 10 || cfg.InboxWindow != DefaultConfig().InboxWindow {
		t.Fatalf("loaded %+v", cfg)
	}
	for _, bad := range []struct{ json, says string }{
		{`{"mailbox_itmes": 5}`, "unknown field"},
		{`{"mailbox_ttl": 5}`, "duration"},
		{`{"items_per_share": 1000}`, "items_per_share must be 1..256"},
		{`{"share_rate": {"per_second": 0, "burst": 1}}`, "share_rate"},
	} {
		if _, err := LoadConfig(write(bad.json)); err == nil || !strings.Contains(err.Error(), bad.says) {
			t.Errorf("config %s: err %v, want it to say %q", bad.json, err, bad.says)
		}
	}
}

func TestMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	r := startRelay(t, nil, WithRegisterer(reg))
	c := newCast(t)
	c.alice.share(r, c.buildShare(t, []*tuser{c.bob}, []*tuser{c.carol}).Raw)
	c.alice.share(r, c.buildShare(t, []*tuser{c.bob}, []*tuser{c.mallory}).Raw)
	if got := testutil.ToFloat64(r.prom().shares.WithLabelValues("accepted")); got != 1 {
		t.Fatalf("accepted shares %v", got)
	}
	if got := testutil.ToFloat64(r.prom().shares.WithLabelValues("refused")); got != 1 {
		t.Fatalf("refused shares %v", got)
	}
	if got := testutil.ToFloat64(r.prom().shareFailures.WithLabelValues(protocols.ReasonText(pb.Reason_MISSING))); got != 1 {
		t.Fatalf("failures by reason %v", got)
	}
	n, err := testutil.GatherAndCount(reg, "kith_relay_mailbox_items", "kith_relay_share_verify_seconds", "kith_relay_commit_seconds")
	if err != nil || n != 3 {
		t.Fatalf("gathered %d metrics: %v", n, err)
	}
	// Users and mailboxes: Bob's holds the share; a second share to Erin
	// makes two mailboxes; Bob logs in and takes his: one left. Alice and
	// Bob logged in, so the relay keeps two users.
	gauge := func(name string) float64 {
		t.Helper()
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range mfs {
			if mf.GetName() == name {
				return mf.GetMetric()[0].GetGauge().GetValue()
			}
		}
		t.Fatalf("no %s", name)
		return 0
	}
	c.alice.share(r, c.buildShare(t, []*tuser{c.erin}, []*tuser{c.carol}).Raw)
	if got := gauge("kith_relay_mailboxes_nonempty"); got != 2 {
		t.Fatalf("%v mailboxes with items, want Bob's and Erin's", got)
	}
	in := c.bob.login(r)
	it, err := in.Next()
	if err != nil {
		t.Fatal(err)
	}
	in.Ack(it.Seq)
	waitFor(t, "Bob's mailbox emptied", func() bool { return gauge("kith_relay_mailboxes_nonempty") == 1 })
	c.alice.login(r)
	waitFor(t, "two users", func() bool { return gauge("kith_relay_users") == 2 })
}
