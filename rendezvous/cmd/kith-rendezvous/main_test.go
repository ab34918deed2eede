package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/kithnet/kith/identity"
	"github.com/kithnet/kith/protocols"
	"github.com/kithnet/kith/protocols/client"
	"github.com/kithnet/kith/protocols/pb"
)

// These tests run the real kith-rendezvous binary on loopback.

func buildBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "kith-rendezvous")
	// -buildvcs=true: the commit is stamped even where GOFLAGS turn it off.
	out, err := exec.Command("go", "build", "-buildvcs=true", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

type process struct {
	cmd  *exec.Cmd
	addr peer.AddrInfo
}

// start runs the binary and waits for its first listen address.
func start(t *testing.T, bin, data string, extra ...string) *process {
	t.Helper()
	args := append([]string{"--data", data, "--listen", "/ip4/127.0.0.1/tcp/0", "--log-level", "warn"}, extra...)
	cmd := exec.Command(bin, args...)
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	lines := make(chan string, 4)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	select {
	case line, ok := <-lines:
		if !ok {
			t.Fatal("kith-rendezvous exited before printing an address")
		}
		a, err := ma.NewMultiaddr(line)
		if err != nil {
			t.Fatalf("first line %q is not a multiaddr: %v", line, err)
		}
		ai, err := peer.AddrInfoFromP2pAddr(a)
		if err != nil {
			t.Fatalf("first line %q does not end in /p2p/<id>: %v", line, err)
		}
		return &process{cmd: cmd, addr: *ai}
	case <-time.After(60 * time.Second):
		t.Fatal("kith-rendezvous printed no address within 60s")
	}
	return nil
}

type user struct {
	key     crypto.PrivKey
	id      peer.ID
	h       host.Host
	profile []byte
	enc     *identity.EncKey
}

func newUser(t *testing.T, name string) *user {
	key, _ := identity.GenerateKey()
	id, _ := peer.IDFromPrivateKey(key)
	h, err := libp2p.New(libp2p.Identity(key), libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"), libp2p.DisableMetrics())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	enc, err := identity.GenerateEncKey(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	prof, _ := identity.NewProfile(key, identity.ProfileInfo{Name: name, EncKey: enc.Public()}, time.Now())
	return &user{key, id, h, prof, enc}
}

func befriend(t *testing.T, a, b *user) []byte {
	offer, _ := identity.MakeOffer(a.key, b.id, time.Now(), 0)
	att, err := identity.NewVerifier().Countersign(b.key, offer, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return att.Raw
}

func TestStartPrintsAddressesAndKeepsIdentity(t *testing.T) {
	bin := buildBinary(t)
	data := t.TempDir()
	p := start(t, bin, data)
	first := p.addr.ID
	p.cmd.Process.Signal(syscall.SIGTERM)
	if err := p.cmd.Wait(); err != nil {
		t.Fatalf("SIGTERM: exit %v, want a clean exit", err)
	}
	p = start(t, bin, data)
	if p.addr.ID != first {
		t.Fatalf("identity changed across restarts: %s then %s", first, p.addr.ID)
	}
	st, _ := os.Stat(filepath.Join(data, "key"))
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("key mode %04o", st.Mode().Perm())
	}
}

// TestSecondRelayOnAServedPort: a second relay on the port a first one
// serves exits with words, instead of starting beside it (go-libp2p's
// SO_REUSEPORT would have let it, and users would reach either).
func TestSecondRelayOnAServedPort(t *testing.T) {
	bin := buildBinary(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("/ip4/127.0.0.1/tcp/%d", l.Addr().(*net.TCPAddr).Port)
	l.Close()
	start(t, bin, t.TempDir(), "--listen", addr)
	out, err := exec.Command(bin, "--data", t.TempDir(), "--listen", addr, "--log-level", "warn").CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() == 0 || !strings.Contains(string(out), "address already in use") {
		t.Fatalf("a second relay on %s: %v\n%s", addr, err, out)
	}
}

// TestKill9LosesNothing kills the relay with SIGKILL at random moments
// while Alice shares with Bob (sometimes online, sometimes not) and retries
// whatever was not acknowledged, as a node does. Every share the relay
// acknowledged reaches Bob, none is lost, and no share id is ever stored
// twice (every delivery of an id carries the same mailbox seq).
func TestKill9LosesNothing(t *testing.T) {
	if testing.Short() {
		t.Skip("starts and kills the relay several times")
	}
	bin := buildBinary(t)
	data := t.TempDir()
	alice, bob, carol := newUser(t, "Alice"), newUser(t, "Bob"), newUser(t, "Carol")
	attBob, attCarol := befriend(t, alice, bob), befriend(t, alice, carol)

	const total = 400
	shares := make([][]byte, total)
	for i := range shares {
		s, err := protocols.BuildShare(alice.key, protocols.ShareSpec{
			CreatedAt: time.Now(), Note: fmt.Sprint("share ", i),
			Targets: []protocols.ShareTarget{{Peer: bob.id, Attestation: attBob, Key: bob.enc.Public()}},
			Items:   []protocols.ShareItem{{Peer: carol.id, Name: "Carol", Attestation: attCarol}},
		})
		if err != nil {
			t.Fatal(err)
		}
		shares[i] = s.Raw
	}

	var mu sync.Mutex
	seqOf := map[string]uint64{} // share id -> the seq it was delivered with
	acked := map[int]bool{}      // shares the relay acknowledged to Alice
	record := func(it *pb.InboxItem) {
		mu.Lock()
		defer mu.Unlock()
		if prev, ok := seqOf[string(it.Id)]; ok && prev != it.Seq {
			t.Errorf("share %x stored twice: seqs %d and %d", it.Id, prev, it.Seq)
		}
		seqOf[string(it.Id)] = it.Seq
	}
	bobOnline := func(ctx context.Context, p *process) {
		bob.h.Peerstore().AddAddrs(p.addr.ID, p.addr.Addrs, time.Hour)
		in, err := client.Login(ctx, bob.h, p.addr.ID, bob.profile, nil, 8)
		if err != nil {
			return
		}
		defer in.Close()
		go func() { <-ctx.Done(); in.Close() }()
		for {
			it, err := in.Next()
			if err != nil {
				return
			}
			record(it)
			in.Ack(it.Seq)
		}
	}

	next, kills := 0, 0
	rng := rand.New(rand.NewPCG(1, 2))
	for round := 0; next < total; round++ {
		p := start(t, bin, data)
		alice.h.Peerstore().AddAddrs(p.addr.ID, p.addr.Addrs, time.Hour)
		ctx, cancel := context.WithCancel(context.Background())
		if round%2 == 1 && round <= 8 {
			go bobOnline(ctx, p)
		}
		killAt := time.Now().Add(time.Duration(20+rng.IntN(100)) * time.Millisecond)
		if round > 8 {
			killAt = time.Now().Add(time.Hour) // enough chaos: let it finish
		}
		for next < total && time.Now().Before(killAt) {
			resp, err := client.Share(ctx, alice.h, p.addr.ID, shares[next])
			if err != nil {
				break // killed mid-request or refused: retry the same bytes later
			}
			if resp.Status == pb.Status_OK {
				mu.Lock()
				acked[next] = true
				mu.Unlock()
				next++
			}
		}
		p.cmd.Process.Kill() // SIGKILL: no shutdown, no flush
		p.cmd.Wait()
		cancel()
		kills++
	}

	// Final incarnation: Bob drains his mailbox.
	p := start(t, bin, data)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	bob.h.Peerstore().AddAddrs(p.addr.ID, p.addr.Addrs, time.Hour)
	in, err := client.Login(ctx, bob.h, p.addr.ID, bob.profile, nil, 64)
	if err != nil {
		t.Fatal(err)
	}
	for waiting := in.Result.Waiting; waiting > 0; waiting-- {
		it, err := in.Next()
		if err != nil {
			t.Fatal(err)
		}
		record(it)
		in.Ack(it.Seq)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(acked) != total {
		t.Fatalf("only %d of %d shares were acknowledged", len(acked), total)
	}
	for i, raw := range shares {
		u, _ := protocols.DecodeShare(raw, protocols.Limits{})
		if _, ok := seqOf[string(u.ID[:])]; !ok {
			t.Errorf("share %d (%s) was acknowledged to Alice but never reached Bob", i, u.ID)
		}
	}
	t.Logf("%d shares, relay killed %d times; Bob drained %d at the end", total, kills, in.Result.Waiting)
	if len(seqOf) != total {
		t.Fatalf("Bob received %d distinct shares, want %d", len(seqOf), total)
	}
}

// TestCommandLine: --help exits 0; version and --version name the commit
// and the Go version; an unknown flag or argument fails with words.
func TestCommandLine(t *testing.T) {
	bin := buildBinary(t)
	if out, err := exec.Command(bin, "--help").CombinedOutput(); err != nil || !strings.Contains(string(out), "--print-config") {
		t.Fatalf("--help: %v\n%s", err, out)
	}
	for _, args := range [][]string{{"version"}, {"--version"}} {
		out, err := exec.Command(bin, args...).CombinedOutput()
		if err != nil || !strings.HasPrefix(string(out), "kith-rendezvous ") || !strings.Contains(string(out), "go1.") || !strings.Contains(string(out), "commit ") {
			t.Fatalf("%v: %v %q", args, err, out)
		}
	}
	for _, args := range [][]string{{"--bogus"}, {"stray"}} {
		out, err := exec.Command(bin, args...).CombinedOutput()
		if err == nil || !strings.HasPrefix(string(out), "kith-rendezvous: ") {
			t.Fatalf("%v: %v %q", args, err, out)
		}
	}
}
