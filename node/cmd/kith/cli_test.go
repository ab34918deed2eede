package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kithnet/kith/node"
)

// TestCommandLine runs the real binary: --help and version exit 0 and
// say what they should; completion is there; init refuses a rendezvous
// address without /p2p/ and creates nothing; with --json a failure is one
// object with a stable code; empty lists are [] in JSON and a hint in
// text.
func TestCommandLine(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the real binary")
	}
	kith, _ := buildBinaries(t)
	root := t.TempDir()
	e := &e2e{t: t, kith: kith, root: root, daemons: map[string]*exec.Cmd{}}
	if out, code := e.run("--help"); code != 0 || !strings.Contains(out, "kith init") {
		t.Fatalf("--help: exit %d %q", code, out)
	}
	for _, args := range [][]string{{"version"}, {"--version"}} {
		if out, code := e.run(args...); code != 0 || !strings.HasPrefix(out, "kith ") || !strings.Contains(out, "go1.") {
			t.Fatalf("%v: exit %d %q", args, code, out)
		}
	}
	if out, code := e.run("completion", "bash"); code != 0 || !strings.Contains(out, "bash completion") {
		t.Fatalf("completion: exit %d %.80q", code, out)
	}

	dir := filepath.Join(root, "nobody")
	out, code := e.run("init", "--name", "Zed", "--data", dir, "--rendezvous", "/ip4/127.0.0.1/tcp/4001")
	var stdout string
	if code == 0 || !strings.Contains(out, "must be a whole multiaddr ending in /p2p/<peer id>") || strings.Contains(out, "invalid argument") {
		t.Fatalf("init with an address without /p2p/: exit %d %q", code, out)
	}
	if _, err := os.Stat(dir); err == nil {
		t.Fatal("a refused init created the data directory")
	}
	stdout, _, code = e.runSplit("friends", "--json", "--data", dir)
	var failure node.ErrorBody
	if code == 0 || json.Unmarshal([]byte(stdout), &failure) != nil || failure.Code != node.CodeNotRunning || !strings.Contains(failure.Error, "kith up") {
		t.Fatalf("friends --json without a daemon: exit %d %q", code, stdout)
	}
	stdout, stderr, code := e.runSplit("friends", "--bogus", "--json", "--data", dir)
	if code == 0 || stderr != "" || json.Unmarshal([]byte(stdout), &failure) != nil || failure.Code != node.CodeUsage {
		t.Fatalf("an unknown flag with --json: exit %d, %q, stderr %q", code, stdout, stderr)
	}

	e.ok("init", "--name", "Zed", "--data", e.dir("Zed"))
	cmd := exec.Command(kith, "up", "--data", e.dir("Zed"), "--listen", "/ip4/127.0.0.1/tcp/0")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	e.wait("Zed's daemon", func() bool { _, code := e.run("status", "--data", e.dir("Zed")); return code == 0 })
	for _, list := range []string{"friends", "groups", "requests", "shares"} {
		if out := strings.TrimSpace(e.ok(list, "--json", "--data", e.dir("Zed"))); out != "[]" {
			t.Fatalf("%s --json with none: %q", list, out)
		}
		if out := e.ok(list, "--data", e.dir("Zed")); !strings.HasPrefix(out, "No ") || strings.Count(out, "\n") != 1 {
			t.Fatalf("%s with none: %q", list, out)
		}
	}
	if out, code := e.run("group", "add", "nosuch", "Bob", "--data", e.dir("Zed")); code == 0 || strings.Contains(out, "not found:") {
		t.Fatalf("adding to a group that does not exist: exit %d %q", code, out)
	}
}
