package main

import (
	"bytes"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/kithnet/kith/node"
)

// TestRelayReadsNoWords runs the real relay and real nodes through the
// patent's story with a marker in every word and name a person types
// (display names, request messages, a group label, a share's note), each
// message made while its recipient is offline so that the relay stores
// it. The recipients' nodes show every field as sent; the relay's data
// directory, once it has stopped, holds the marker nowhere.
func TestRelayReadsNoWords(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the real binaries")
	}
	kith, relayBin := buildBinaries(t)
	root := t.TempDir()
	e := &e2e{t: t, kith: kith, root: root, daemons: map[string]*exec.Cmd{}}
	// Five letters: three matched by chance in a megabyte of sealed bytes
	// or base58 peer ids (seen in CI); five do once in ~10^12 bytes.
	const mark = "qz7xw"
	alice, bob, carol := "Alice-qz7xwa", "Bob-qz7xwb", "Carol-qz7xwc"
	hello, hi, team, note, pickMsg := "hello qz7xwm1", "hi qz7xwm2", "team-qz7xwg", "note qz7xwn", "pick qz7xwp"

	relayData := filepath.Join(root, "relay")
	relay, addr := e.startRelay(relayBin, relayData, freePort(t))
	for dir, name := range map[string]string{"Alice": alice, "Bob": bob, "Carol": carol} {
		e.ok("init", "--name", name, "--data", e.dir(dir), "--rendezvous", addr)
		e.up(dir)
	}
	ids := map[string]string{}
	for _, who := range []string{"Alice", "Bob", "Carol"} {
		var id node.IDView
		e.okJSON(&id, "id", "--json", "--data", e.dir(who))
		ids[who] = id.ID
		if who == "Alice" {
			ids["invite"] = id.Invite
		}
	}

	// Bob and Carol ask Alice, offline, through her invite: the relay
	// keeps the requests for her.
	e.stop("Alice")
	e.ok("add", ids["invite"], "--message", hello, "--data", e.dir("Bob"))
	e.ok("add", ids["invite"], "--message", hi, "--data", e.dir("Carol"))
	e.up("Alice")
	for from, msg := range map[string]string{bob: hello, carol: hi} {
		r := e.waitRequest("Alice", from)
		if r.Message != msg || r.Unopened != "" {
			t.Fatalf("Alice reads %+v", r)
		}
		e.ok("accept", r.ID, "--data", e.dir("Alice"))
	}
	// Bob knew her only by her invite; her answer gave him the key to
	// her profile's name.
	e.waitFriends("Bob", alice)
	e.waitFriends("Carol", alice)

	// Alice shares her group with Bob, offline: the relay stores it.
	e.ok("group", "create", team, "--data", e.dir("Alice"))
	e.ok("group", "add", team, carol, "--data", e.dir("Alice"))
	e.stop("Bob")
	var res node.ShareResult
	e.okJSON(&res, "share", "--to", bob, "--group", team, "--note", note, "--json", "--data", e.dir("Alice"))
	if len(res.Targets) != 1 || res.Targets[0].Status != "stored" {
		t.Fatalf("the share to offline Bob: %+v", res)
	}
	e.stop("Carol")
	e.up("Bob")
	var shares []node.ShareView
	e.wait("Bob's share", func() bool {
		e.okJSON(&shares, "shares", "--json", "--data", e.dir("Bob"))
		return len(shares) == 1
	})
	s := shares[0]
	if s.FromName != alice || s.Note != note || s.Unopened != "" || len(s.Items) != 1 || s.Items[0].Name != carol || s.Items[0].Group != team {
		t.Fatalf("Bob reads %+v", s)
	}

	// Bob picks Carol, offline: the relay stores his request; she
	// accepts while he is offline: it stores her answer.
	var picks []node.PickView
	e.okJSON(&picks, "pick", s.ID, carol, "--message", pickMsg, "--json", "--data", e.dir("Bob"))
	if len(picks) != 1 || picks[0].Sent != "relay" {
		t.Fatalf("pick: %+v", picks)
	}
	e.stop("Bob")
	e.up("Carol")
	r := e.waitRequest("Carol", bob)
	if r.Message != pickMsg || r.IntroducerName != alice || !r.IntroducerVerified || r.Unopened != "" {
		t.Fatalf("Carol reads %+v", r)
	}
	e.ok("accept", r.ID, "--data", e.dir("Carol"))
	e.wait("Carol's answer stored", func() bool {
		var reqs []node.RequestView
		e.okJSON(&reqs, "requests", "--json", "--data", e.dir("Carol"))
		got := findRequest(reqs, "in", bob)
		return got != nil && got.Sent != "queued"
	})
	e.up("Bob")
	e.waitFriends("Bob", alice, carol)

	// The relay stops; its files are read as they are on disk.
	relay.Process.Signal(syscall.SIGTERM)
	if err := relay.Wait(); err != nil {
		t.Fatalf("the relay did not stop cleanly: %v", err)
	}
	var all [][]byte
	filepath.WalkDir(relayData, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if i := bytes.Index(b, []byte(mark)); i >= 0 {
			lo, hi := max(0, i-24), min(len(b), i+24)
			t.Errorf("%s holds a word in clear: %q", strings.TrimPrefix(path, relayData), b[lo:hi])
		}
		all = append(all, b)
		return nil
	})
	// The search can find what is there: the relay does keep the peer
	// ids it must check.
	bobID, err := peer.Decode(ids["Bob"])
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(bytes.Join(all, nil), []byte(bobID)) {
		t.Fatal("Bob's peer id is nowhere in the relay's files: the search would find nothing either")
	}
}
