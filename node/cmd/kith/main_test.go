package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kithnet/kith/node"
	"github.com/kithnet/kith/node/daemon"
)

// TestEndToEnd starts the real kith-rendezvous and real `kith up` daemons
// on loopback and drives the whole story through the CLI, killing the relay
// with SIGKILL in the middle.
func TestEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the real binaries")
	}
	kith, relayBin := buildBinaries(t)
	root := t.TempDir()
	e := &e2e{t: t, kith: kith, root: root, daemons: map[string]*exec.Cmd{}}

	// The relay, on a fixed port so that it can be restarted at the same address.
	port := freePort(t)
	relayData := filepath.Join(root, "relay")
	relay, addr := e.startRelay(relayBin, relayData, port)

	for _, name := range []string{"Alice", "Bob", "Carol", "Dave", "Erin", "Mallory"} {
		e.ok("init", "--name", name, "--data", e.dir(name), "--rendezvous", addr)
	}
	for _, name := range []string{"Alice", "Bob", "Carol", "Dave", "Erin"} {
		e.up(name)
	}

	// Friendships: each friend uses Alice's invite; Alice accepts.
	for _, f := range []string{"Bob", "Carol", "Dave", "Erin"} {
		var id node.IDView
		e.okJSON(&id, "id", "--json", "--data", e.dir("Alice"))
		e.ok("add", id.Invite, "--data", e.dir(f), "--message", "hello from "+f)
		req := e.waitRequest("Alice", f)
		e.ok("accept", req.ID[:8], "--data", e.dir("Alice"))
		e.waitFriends(f, "Alice")
	}
	// The local server answers only requests addressed to itself: a page
	// elsewhere whose name resolves to 127.0.0.1 (DNS rebinding) is
	// refused, page and API, token or not.
	e.checkHostHeaders("Alice")

	// A group, flags before and after the positional arguments.
	e.ok("--data", e.dir("Alice"), "group", "create", "work")
	e.ok("group", "add", "work", "Carol", "Dave", "Erin", "--data", e.dir("Alice"))
	var groups []node.GroupView
	e.okJSON(&groups, "groups", "--json", "--data", e.dir("Alice"))
	if len(groups) != 1 || len(groups[0].Members) != 3 {
		t.Fatalf("groups %+v", groups)
	}

	// A share of someone who is not Alice's friend is refused, naming them.
	var mallory node.IDView
	e.up("Mallory")
	e.okJSON(&mallory, "id", "--json", "--data", e.dir("Mallory"))
	// With --json, the failure is one object with a stable code, and the
	// result names each failing id.
	out, stderr, code := e.runSplit("share", "--to", "Bob", "--friend", mallory.ID, "--json", "--data", e.dir("Alice"))
	var refusedErr struct {
		Error  string
		Code   string
		Result node.ShareResult
	}
	json.Unmarshal([]byte(out), &refusedErr)
	refused := refusedErr.Result
	if code == 0 || refusedErr.Code != node.CodeRefused || len(refused.Failed) != 1 || refused.Failed[0].Peer != mallory.ID || !strings.Contains(refused.Failed[0].Reason, "not your friend") {
		t.Fatalf("share of a non-friend: exit %d, %s%s", code, out, stderr)
	}
	// Without --json, the reason names the peer in words.
	if out, code := e.run("share", "--to", "Bob", "--friend", mallory.ID, "--data", e.dir("Alice")); code == 0 || !strings.Contains(out, "is not your friend (no valid attestation)") {
		t.Fatalf("share of a non-friend, as text: exit %d %q", code, out)
	}

	// Bob is offline: Alice shares the group with him; the relay stores it.
	e.stop("Bob")
	var res node.ShareResult
	e.okJSON(&res, "share", "--to", "Bob", "--group", "work", "--json", "--data", e.dir("Alice"))
	if len(res.Targets) != 1 || res.Targets[0].Status != "stored" {
		t.Fatalf("share to offline Bob: %+v", res)
	}

	// The relay dies without warning and comes back.
	relay.Process.Kill()
	relay.Wait()
	_, addr2 := e.startRelay(relayBin, relayData, port)
	if addr2 != addr {
		t.Fatalf("the relay came back as %s, was %s", addr2, addr)
	}

	// Everyone online logs in again at the restarted relay (backoff);
	// Bob logs in: the share is delivered.
	for _, name := range []string{"Alice", "Carol", "Dave", "Erin"} {
		e.waitLoggedIn(name)
	}
	e.up("Bob")
	var shares []node.ShareView
	e.wait("Bob's share", func() bool {
		e.okJSON(&shares, "shares", "--json", "--data", e.dir("Bob"))
		return len(shares) == 1 && len(shares[0].Items) == 3
	})
	for _, it := range shares[0].Items {
		if it.State != "new" || it.Group != "work" {
			t.Fatalf("item %+v", it)
		}
	}

	// Dave is offline: Bob picks Carol (online: direct) and Dave (relayed).
	e.stop("Dave")
	var picks []node.PickView
	e.okJSON(&picks, "pick", shares[0].ID[:10], "Carol", "Dave", "Erin", "--json", "--data", e.dir("Bob"))
	sent := map[string]string{}
	for _, p := range picks {
		sent[p.Name] = p.Sent
	}
	if sent["Carol"] != "direct" || sent["Erin"] != "direct" || sent["Dave"] != "relay" {
		t.Fatalf("pick: %+v", picks)
	}
	// Picking again sends nothing.
	e.okJSON(&picks, "pick", shares[0].ID, "--all", "--json", "--data", e.dir("Bob"))
	for _, p := range picks {
		if p.Sent != "skipped" {
			t.Fatalf("second pick sent %+v", p)
		}
	}

	// Carol accepts, seeing who introduced Bob; Erin declines.
	for _, who := range []string{"Carol", "Erin"} {
		r := e.waitRequest(who, "Bob")
		if r.Introducer == "" || !r.IntroducerVerified || r.Provenance != "Alice, your friend, shared you with Bob (verified)" {
			t.Fatalf("%s's request: %+v", who, r)
		}
	}
	e.ok("accept", e.waitRequest("Carol", "Bob").ID, "--data", e.dir("Carol"))
	e.ok("decline", e.waitRequest("Erin", "Bob").ID, "--data", e.dir("Erin"))

	// Dave comes back, finds the request, accepts.
	e.up("Dave")
	e.ok("accept", e.waitRequest("Dave", "Bob").ID, "--data", e.dir("Dave"))

	e.waitFriends("Bob", "Alice", "Carol", "Dave")
	e.waitFriends("Carol", "Alice", "Bob")
	e.waitFriends("Dave", "Alice", "Bob")
	e.waitFriends("Erin", "Alice")
	e.waitFriends("Alice", "Bob", "Carol", "Dave", "Erin")

	// No duplicate anywhere: one request per person asked.
	var reqs []node.RequestView
	e.okJSON(&reqs, "requests", "--json", "--data", e.dir("Bob"))
	count := map[string]int{}
	for _, r := range reqs {
		count[r.Direction+" "+r.Name]++
	}
	for k, n := range count {
		if n != 1 {
			t.Fatalf("Bob has %d requests %q", n, k)
		}
	}
	if r := findRequest(reqs, "out", "Erin"); r == nil || r.State != "pending" {
		t.Fatalf("Bob's request to Erin: %+v (a decline is never revealed)", r)
	}
	// Unknown commands and missing daemons fail with a reason.
	if out, code := e.run("accept", "ffff", "--data", e.dir("Bob")); code == 0 || !strings.Contains(out, "no request") {
		t.Fatalf("accept of an unknown request: exit %d %q", code, out)
	}
	if out, code := e.run("friends", "--data", filepath.Join(root, "nobody")); code == 0 || !strings.Contains(out, "not running") {
		t.Fatalf("no daemon: exit %d %q", code, out)
	}
}

// buildBinaries builds kith and kith-rendezvous for a test.
func buildBinaries(t *testing.T) (kith, relay string) {
	t.Helper()
	bins := t.TempDir()
	kith, relay = filepath.Join(bins, "kith"), filepath.Join(bins, "kith-rendezvous")
	for out, pkg := range map[string]string{kith: ".", relay: "../../../rendezvous/cmd/kith-rendezvous"} {
		if b, err := exec.Command("go", "build", "-o", out, pkg).CombinedOutput(); err != nil {
			t.Fatalf("go build %s: %v\n%s", pkg, err, b)
		}
	}
	return kith, relay
}

type e2e struct {
	t       *testing.T
	kith    string
	root    string
	daemons map[string]*exec.Cmd
}

func (e *e2e) dir(name string) string { return filepath.Join(e.root, strings.ToLower(name)) }

// checkHostHeaders sends the running daemon of name requests with its own
// and with foreign Host headers, to the page and to the API.
func (e *e2e) checkHostHeaders(name string) {
	e.t.Helper()
	login, err := daemon.LoginURL(e.dir(name))
	if err != nil {
		e.t.Fatal(err)
	}
	u, err := url.Parse(login)
	if err != nil {
		e.t.Fatal(err)
	}
	token := u.Query().Get("token")
	_, port, _ := net.SplitHostPort(u.Host)
	tests := []struct {
		host, path string
		want       int
	}{
		{u.Host, "/", 200},
		{"localhost:" + port, "/api/id", 200},
		{"127.0.0.1:" + port, "/api/id", 200},
		{"evil.example:" + port, "/", 421},
		{"evil.example:" + port, "/api/id", 421},
		{"evil.example", "/api/id", 421},
		{"localhost:1", "/api/id", 421},
	}
	for _, tt := range tests {
		req, _ := http.NewRequest("GET", "http://"+u.Host+tt.path, nil)
		req.Host = tt.host
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			e.t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tt.want {
			e.t.Fatalf("GET %s with Host %q: %d, want %d", tt.path, tt.host, resp.StatusCode, tt.want)
		}
	}
}

// run runs the kith CLI and returns its combined output and exit code.
func (e *e2e) run(args ...string) (string, int) {
	stdout, stderr, code := e.runSplit(args...)
	return stdout + stderr, code
}

func (e *e2e) runSplit(args ...string) (string, string, int) {
	cmd := exec.Command(e.kith, args...)
	cmd.Env = append(os.Environ(), "KITH_DATA=")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		e.t.Fatalf("kith %v: %v", args, err)
	}
	return stdout.String(), stderr.String(), code
}

func (e *e2e) ok(args ...string) string {
	e.t.Helper()
	out, code := e.run(args...)
	if code != 0 {
		e.t.Fatalf("kith %s: exit %d\n%s", strings.Join(args, " "), code, out)
	}
	return out
}

func (e *e2e) okJSON(v any, args ...string) {
	e.t.Helper()
	cmd := exec.Command(e.kith, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		e.t.Fatalf("kith %s: %v\n%s%s", strings.Join(args, " "), err, out, stderr.String())
	}
	if err := json.Unmarshal(out, v); err != nil {
		e.t.Fatalf("kith %s: not JSON: %v\n%s", strings.Join(args, " "), err, out)
	}
}

func (e *e2e) up(name string) {
	e.t.Helper()
	cmd := exec.Command(e.kith, "up", "--data", e.dir(name), "--listen", "/ip4/127.0.0.1/tcp/0")
	logf, _ := os.Create(filepath.Join(e.root, strings.ToLower(name)+".log"))
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		e.t.Fatal(err)
	}
	e.daemons[name] = cmd
	e.t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	e.waitLoggedIn(name)
}

func (e *e2e) waitLoggedIn(name string) {
	e.t.Helper()
	e.wait(name+" logged in", func() bool {
		var st node.StatusView
		cmd := exec.Command(e.kith, "status", "--json", "--data", e.dir(name))
		out, err := cmd.Output()
		return err == nil && json.Unmarshal(out, &st) == nil && len(st.Rendezvous) > 0 && st.Rendezvous[0].LoggedIn
	})
}

func (e *e2e) stop(name string) {
	cmd := e.daemons[name]
	cmd.Process.Signal(syscall.SIGTERM)
	if err := cmd.Wait(); err != nil {
		e.t.Fatalf("%s's daemon did not exit cleanly on SIGTERM: %v", name, err)
	}
}

func (e *e2e) startRelay(bin, data string, port int) (*exec.Cmd, string) {
	e.t.Helper()
	cmd := exec.Command(bin, "--data", data, "--listen", fmt.Sprintf("/ip4/127.0.0.1/tcp/%d", port), "--log-level", "warn")
	cmd.Stderr = os.Stderr
	stdout, _ := cmd.StdoutPipe()
	var err error
	for range 50 { // the port may take a moment to be free after a kill
		if err = cmd.Start(); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		e.t.Fatalf("the relay printed no address: %v", err)
	}
	return cmd, strings.TrimSpace(line)
}

func (e *e2e) wait(what string, cond func() bool) {
	e.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			e.dumpLogs()
			e.t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// dumpLogs prints the end of each daemon's log, for a test that failed.
func (e *e2e) dumpLogs() {
	logs, _ := filepath.Glob(filepath.Join(e.root, "*.log"))
	for _, l := range logs {
		b, _ := os.ReadFile(l)
		if len(b) > 3000 {
			b = b[len(b)-3000:]
		}
		e.t.Logf("--- %s:\n%s", filepath.Base(l), b)
	}
}

func (e *e2e) waitRequest(who, from string) node.RequestView {
	e.t.Helper()
	var r *node.RequestView
	e.wait(who+" sees "+from+"'s request", func() bool {
		var reqs []node.RequestView
		e.okJSON(&reqs, "requests", "--json", "--data", e.dir(who))
		r = findRequest(reqs, "in", from)
		return r != nil
	})
	return *r
}

func findRequest(reqs []node.RequestView, dir, name string) *node.RequestView {
	for i := range reqs {
		if reqs[i].Direction == dir && reqs[i].Name == name {
			return &reqs[i]
		}
	}
	return nil
}

// waitFriends waits until who's friends are exactly names.
func (e *e2e) waitFriends(who string, names ...string) {
	e.t.Helper()
	sort.Strings(names)
	var got []string
	e.wait(fmt.Sprintf("%s's friends to be %v", who, names), func() bool {
		var fs []node.FriendView
		e.okJSON(&fs, "friends", "--json", "--data", e.dir(who))
		got = got[:0]
		for _, f := range fs {
			got = append(got, f.Name)
		}
		sort.Strings(got)
		return strings.Join(got, ",") == strings.Join(names, ",")
	})
}

func freePort(t *testing.T) int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func TestDemoOnce(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the demo")
	}
	var out bytes.Buffer
	root := newRoot()
	root.SetOut(&out)
	root.SetArgs([]string{"demo", "--once"})
	if err := root.Execute(); err != nil {
		t.Fatalf("demo: %v\n%s", err, out.String())
	}
	for _, want := range []string{
		"stored (Bob is offline)",
		"The relay answers: refused",
		"Carol sees: \"Alice, your friend, shared you with Bob (verified)\"",
		"Dave   stored at the relay",
		"Erin declines. Bob is never told.",
		"Bob    Alice, Carol (via Alice), Dave (via Alice), Frank (via Alice)",
		"The second pick adds Bob's introduction to Dave's pending request.",
		"Carol sees: \"Alice and Bob, your friends, shared you with Dave (verified)\"",
		"Frank does not allow being shared",
		"Grace's inbox: Alice welcomed you with \"Work\": ",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("the demo does not say %q", want)
		}
	}
}
