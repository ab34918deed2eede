package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/peerstore"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/kithnet/kith/identity"
	"github.com/kithnet/kith/protocols"
	"github.com/kithnet/kith/protocols/client"
	"github.com/kithnet/kith/protocols/pb"
)

// federationOf prepares n relays' data directories (keys made now, so
// that each config can name the others), each on a fixed loopback port,
// each with the other two in peers; it returns their directories,
// listen addresses and full addresses.
func federationOf(t *testing.T, n int) (dirs, listen []string, full []peer.AddrInfo) {
	for range n {
		dir := t.TempDir()
		key, _, err := identity.LoadOrCreateKey(filepath.Join(dir, "key"), nil)
		if err != nil {
			t.Fatal(err)
		}
		id, _ := peer.IDFromPrivateKey(key)
		l, _ := net.Listen("tcp", "127.0.0.1:0")
		port := l.Addr().(*net.TCPAddr).Port
		l.Close()
		a := fmt.Sprintf("/ip4/127.0.0.1/tcp/%d", port)
		dirs, listen = append(dirs, dir), append(listen, a)
		full = append(full, peer.AddrInfo{ID: id, Addrs: []ma.Multiaddr{ma.StringCast(a)}})
	}
	for i, dir := range dirs {
		var peers []string
		for j, ai := range full {
			if j != i {
				peers = append(peers, fmt.Sprintf("%s/p2p/%s", ai.Addrs[0], ai.ID))
			}
		}
		cfg, _ := json.Marshal(map[string]any{"peers": peers, "circuit": map[string]any{"enabled": false}})
		if err := os.WriteFile(filepath.Join(dir, "relay.json"), cfg, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dirs, listen, full
}

func startMember(t *testing.T, bin, dir, listen string) *process {
	return start(t, bin, dir, "--listen", listen, "--config", filepath.Join(dir, "relay.json"))
}

func (u *user) at(r peer.AddrInfo) {
	u.h.Peerstore().AddAddrs(r.ID, r.Addrs, peerstore.PermanentAddrTTL)
}

// TestFederationOfThreeRelays runs three real kith-rendezvous processes,
// each naming the other two: a revocation made while one of them is down
// reaches it when it is back and withdraws what rested on it there; a
// user who moved is answered MOVED with their newer profile.
func TestFederationOfThreeRelays(t *testing.T) {
	bin := buildBinary(t)
	dirs, listen, relays := federationOf(t, 3)
	procs := make([]*process, 3)
	for i := range procs {
		procs[i] = startMember(t, bin, dirs[i], listen[i])
	}
	ctx := context.Background()
	alice, carol, erin := newUser(t, "Alice"), newUser(t, "Carol"), newUser(t, "Erin")
	aliceCarol, aliceErin := befriend(t, alice, carol), befriend(t, alice, erin)
	for _, u := range []*user{alice, carol, erin} {
		for _, r := range relays {
			u.at(r)
		}
	}
	share := func(to *user, toAtt []byte, item *user, itemAtt []byte) []byte {
		s, err := protocols.BuildShare(alice.key, protocols.ShareSpec{CreatedAt: time.Now(),
			Targets: []protocols.ShareTarget{{Peer: to.id, Attestation: toAtt}},
			Items:   []protocols.ShareItem{{Peer: item.id, Attestation: itemAtt}}})
		if err != nil {
			t.Fatal(err)
		}
		return s.Raw
	}

	// Erin (homed at r3, offline) has a share of Carol waiting.
	if resp, err := client.Share(ctx, alice.h, relays[2].ID, share(erin, aliceErin, carol, aliceCarol)); err != nil || resp.Targets[0].Delivery != pb.Delivery_STORED {
		t.Fatalf("the share to Erin: %v %v", resp, err)
	}
	// r3 goes down; Carol unfriends Alice at r1.
	procs[2].cmd.Process.Signal(syscall.SIGTERM)
	procs[2].cmd.Wait()
	att, _ := identity.NewVerifier().Attestation(aliceCarol, time.Now())
	rev, _ := identity.Revoke(carol.key, att, time.Now())
	if _, err := client.Revoke(ctx, carol.h, relays[0].ID, [][]byte{rev}); err != nil {
		t.Fatal(err)
	}
	// r3 comes back and learns it from the others: the share waiting for
	// Erin is withdrawn, and a new one on the friendship is refused.
	procs[2] = startMember(t, bin, dirs[2], listen[2])
	deadline := time.Now().Add(20 * time.Second)
	for {
		alice.at(relays[2])
		resp, err := client.Share(ctx, alice.h, relays[2].ID, share(erin, aliceErin, carol, aliceCarol))
		if err != nil && resp != nil && len(resp.Failures) > 0 && resp.Failures[0].Reason == pb.Reason_REVOKED {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("r3 still takes shares on the revoked friendship: %v %v", resp, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	inbox, err := client.Login(ctx, erin.h, relays[2].ID, erin.profile, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	if inbox.Result.Waiting != 0 {
		t.Fatalf("%d items still wait for Erin at r3", inbox.Result.Waiting)
	}
	inbox.Close()

	// Bob moves from r2 to r3: once his node logs in at r2 with his newer
	// profile, r2 answers MOVED for him, with that profile.
	bob := newUser(t, "Bob")
	aliceBob := befriend(t, alice, bob)
	for _, r := range relays {
		bob.at(r)
	}
	home := func(r peer.AddrInfo, seq uint64) []byte {
		p, err := identity.NewProfile(bob.key, identity.ProfileInfo{Name: "Bob", Seq: seq,
			Relays: []ma.Multiaddr{r.Addrs[0].Encapsulate(ma.StringCast("/p2p/" + r.ID.String()))}}, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	for _, step := range []struct {
		relay peer.AddrInfo
		prof  []byte
	}{{relays[1], home(relays[1], 1)}, {relays[2], home(relays[2], 2)}} {
		in, err := client.Login(ctx, bob.h, step.relay.ID, step.prof, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		in.Close()
	}
	newer := home(relays[2], 2)
	in, err := client.Login(ctx, bob.h, relays[1].ID, newer, nil, 0) // collecting what waited
	if err != nil {
		t.Fatal(err)
	}
	in.Close()
	resp, _ := client.Share(ctx, alice.h, relays[1].ID, share(bob, aliceBob, erin, aliceErin))
	if resp == nil || len(resp.Failures) != 1 || resp.Failures[0].Reason != pb.Reason_MOVED || !bytes.Equal(resp.Failures[0].Profile, newer) {
		t.Fatalf("a share to Bob at the relay he left: %v", resp)
	}
	if resp, err := client.Share(ctx, alice.h, relays[2].ID, share(bob, aliceBob, erin, aliceErin)); err != nil || resp.Targets[0].Delivery != pb.Delivery_STORED {
		t.Fatalf("the same share at his new relay: %v %v", resp, err)
	}
}
