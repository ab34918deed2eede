package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kithnet/kith/node"
)

// withRelay starts what a lifecycle test needs: the real binaries built
// and a relay on loopback, whose address it returns (skipped with -short).
func withRelay(t *testing.T) (*e2e, string) {
	t.Helper()
	if testing.Short() {
		t.Skip("builds and runs the real binaries")
	}
	kith, relayBin := buildBinaries(t)
	e := &e2e{t: t, kith: kith, root: t.TempDir(), daemons: map[string]*exec.Cmd{}}
	_, addr := e.startRelay(relayBin, filepath.Join(e.root, "relay"), freePort(t))
	return e, addr
}

// befriend makes who a friend of each of others through who's invite,
// accepted by who.
func (e *e2e) befriend(who string, others ...string) {
	e.t.Helper()
	var id node.IDView
	e.okJSON(&id, "id", "--json", "--data", e.dir(who))
	for _, o := range others {
		e.ok("add", id.Invite, "--data", e.dir(o))
		e.ok("accept", e.waitRequest(who, o).ID, "--data", e.dir(who))
		e.waitFriendOf(o, who)
	}
}

// waitFriendOf waits until who counts name among their friends.
func (e *e2e) waitFriendOf(who, name string) {
	e.t.Helper()
	e.wait(who+" befriends "+name, func() bool { return e.hasFriend(who, name) })
}

func (e *e2e) hasFriend(who, name string) bool {
	var fs []node.FriendView
	e.okJSON(&fs, "friends", "--json", "--data", e.dir(who))
	for _, f := range fs {
		if f.Name == name {
			return true
		}
	}
	return false
}

// setConfig sets one field of a data directory's config.json.
func (e *e2e) setConfig(name, field string, value any) {
	e.t.Helper()
	path := filepath.Join(e.dir(name), "config.json")
	b, err := os.ReadFile(path)
	if err != nil {
		e.t.Fatal(err)
	}
	cfg := map[string]any{}
	if err := json.Unmarshal(b, &cfg); err != nil {
		e.t.Fatal(err)
	}
	cfg[field] = value
	b, _ = json.Marshal(cfg)
	if err := os.WriteFile(path, b, 0o600); err != nil {
		e.t.Fatal(err)
	}
}

// jsonFailure runs a command that must fail with --json and returns its
// error object.
func (e *e2e) jsonFailure(args ...string) (code, words string, result json.RawMessage) {
	e.t.Helper()
	out, _, exit := e.runSplit(append(args, "--json")...)
	var f struct {
		Error  string          `json:"error"`
		Code   string          `json:"code"`
		Result json.RawMessage `json:"result"`
	}
	if exit == 0 || json.Unmarshal([]byte(out), &f) != nil {
		e.t.Fatalf("kith %s: exit %d, want a JSON failure:\n%s", strings.Join(args, " "), exit, out)
	}
	return f.Code, f.Error, f.Result
}

// TestSettingsAndBlocks runs, on the real binaries, what a person does
// around sharing: renaming themselves, saying nobody may share them (a
// friend whose node knows it refuses before sending; one whose node does
// not yet know is refused by the relay), changing their mind, blocking a
// friend (which must be confirmed, and ends the friendship), listing and
// unblocking.
func TestSettingsAndBlocks(t *testing.T) {
	e, addr := withRelay(t)
	for _, name := range []string{"Alice", "Bob", "Carol", "Dave"} {
		e.ok("init", "--name", name, "--data", e.dir(name), "--rendezvous", addr)
	}
	// Alice's node asks for friends' newest profiles every second; Dave's
	// keeps the default (an hour), so it holds Carol's old profile.
	e.setConfig("Alice", "profile_refresh", "1s")
	for _, name := range []string{"Alice", "Bob", "Carol", "Dave"} {
		e.up(name)
	}
	e.befriend("Alice", "Bob", "Carol")
	e.befriend("Dave", "Bob", "Carol")

	// Carol renames herself and says nobody may share her.
	var st node.SettingsView
	e.okJSON(&st, "settings", "--json", "--data", e.dir("Carol"))
	if st.Name != "Carol" || st.Sharing != "friends" {
		t.Fatalf("Carol's settings at first: %+v", st)
	}
	seq := st.Seq
	e.okJSON(&st, "settings", "--name", "Caroline", "--sharing", "nobody", "--json", "--data", e.dir("Carol"))
	if st.Name != "Caroline" || st.Sharing != "nobody" || st.Seq <= seq {
		t.Fatalf("Carol's settings after the change: %+v (seq was %d)", st, seq)
	}
	if code, words, _ := e.jsonFailure("settings", "--sharing", "strangers", "--data", e.dir("Carol")); code != node.CodeBadArgument || !strings.Contains(words, "or nobody") {
		t.Errorf("a wrong policy: %s %q", code, words)
	}
	if out := e.ok("settings", "--data", e.dir("Carol")); !strings.Contains(out, "Caroline") || !strings.Contains(out, "nobody") {
		t.Errorf("kith settings says:\n%s", out)
	}

	// Alice's node learns the new name, and with it the policy: it refuses
	// to share Carol before anything is sent.
	e.wait("Alice to see Carol's new name", func() bool { return e.hasFriend("Alice", "Caroline") })
	code, words, _ := e.jsonFailure("share", "--to", "Bob", "--friend", "Caroline", "--data", e.dir("Alice"))
	if code != node.CodeRefused {
		t.Errorf("Alice shares Carol: %s %q", code, words)
	}
	out, _ := e.run("share", "--to", "Bob", "--friend", "Caroline", "--data", e.dir("Alice"))
	if !strings.Contains(out, "Caroline does not allow being shared") {
		t.Errorf("Alice is told:\n%s", out)
	}

	// Dave's node still holds Carol's old profile: the relay, which got
	// the new one at her login, refuses the share.
	if e.hasFriend("Dave", "Caroline") {
		t.Fatal("Dave's node learnt Carol's new profile already: the relay's refusal is not tested")
	}
	out, _ = e.run("share", "--to", "Bob", "--friend", "Carol", "--data", e.dir("Dave"))
	if !strings.Contains(out, "Carol does not allow being shared") {
		t.Errorf("Dave is told:\n%s", out)
	}
	var shares []node.ShareView
	e.okJSON(&shares, "shares", "--json", "--data", e.dir("Bob"))
	if len(shares) != 0 {
		t.Fatalf("Bob received %d shares naming someone who said nobody: %+v", len(shares), shares)
	}

	// Carol changes her mind: Dave's share of her goes through.
	e.okJSON(&st, "settings", "--sharing", "friends", "--json", "--data", e.dir("Carol"))
	e.ok("share", "--to", "Bob", "--friend", "Carol", "--data", e.dir("Dave"))
	e.wait("Bob to receive Dave's share", func() bool {
		e.okJSON(&shares, "shares", "--json", "--data", e.dir("Bob"))
		return len(shares) == 1
	})

	// Bob blocks Dave, a friend: that ends the friendship, so it must be
	// confirmed.
	if code, words, _ := e.jsonFailure("block", "Dave", "--data", e.dir("Bob")); code != node.CodeNeedsConfirm || !strings.Contains(words, "--yes") {
		t.Errorf("blocking a friend without --yes: %s %q", code, words)
	}
	if !e.hasFriend("Bob", "Dave") {
		t.Fatal("an unconfirmed block unfriended Dave")
	}
	if out := e.ok("block", "Dave", "--yes", "--data", e.dir("Bob")); !strings.Contains(out, "no longer friends") {
		t.Errorf("kith block --yes says %q", out)
	}
	if e.hasFriend("Bob", "Dave") {
		t.Error("Bob still counts Dave a friend after blocking him")
	}
	e.wait("Dave to learn the friendship ended", func() bool { return !e.hasFriend("Dave", "Bob") })
	var blocked []node.BlockedView
	e.okJSON(&blocked, "blocked", "--json", "--data", e.dir("Bob"))
	if len(blocked) != 1 || blocked[0].Name != "Dave" {
		t.Fatalf("Bob's blocked list: %+v", blocked)
	}
	e.ok("unblock", "Dave", "--data", e.dir("Bob"))
	e.okJSON(&blocked, "blocked", "--json", "--data", e.dir("Bob"))
	if len(blocked) != 0 {
		t.Fatalf("Bob's blocked list after unblocking: %+v", blocked)
	}
	if code, _, _ := e.jsonFailure("unblock", "Dave", "--data", e.dir("Bob")); code != node.CodeNotFound {
		t.Errorf("unblocking someone not blocked: %s", code)
	}
}

// TestInvites runs invites as a person uses them, on the real binaries:
// befriending again through the same invite after an unfriend; an invite
// for one person, used by one and refused to the next (by the inviter's
// node while it is online, by the relay while it is not); a revoked
// invite refused; the list that says which is which.
func TestInvites(t *testing.T) {
	e, addr := withRelay(t)
	names := []string{"Alice", "Bob", "Carol", "Dave", "Erin"}
	for _, name := range names {
		e.ok("init", "--name", name, "--data", e.dir(name), "--rendezvous", addr)
		e.up(name)
	}

	// Bob befriends Alice through her general invite, they part, and he
	// befriends her again through the same link: a new request with a
	// fresh offer, not the old one.
	var id node.IDView
	e.okJSON(&id, "id", "--json", "--data", e.dir("Alice"))
	e.ok("add", id.Invite, "--data", e.dir("Bob"))
	first := e.waitRequest("Alice", "Bob")
	e.ok("accept", first.ID, "--data", e.dir("Alice"))
	e.waitFriendOf("Bob", "Alice")
	e.ok("unfriend", "Bob", "--data", e.dir("Alice"))
	e.wait("Bob to learn the friendship ended", func() bool { return !e.hasFriend("Bob", "Alice") })
	e.ok("add", id.Invite, "--data", e.dir("Bob"))
	var again *node.RequestView
	e.wait("Bob's second request", func() bool {
		var reqs []node.RequestView
		e.okJSON(&reqs, "requests", "--json", "--data", e.dir("Alice"))
		for i := range reqs {
			if reqs[i].Name == "Bob" && reqs[i].State == "pending" {
				again = &reqs[i]
			}
		}
		return again != nil
	})
	if again.ID == first.ID {
		t.Fatal("the second request reuses the first one's id")
	}
	e.ok("accept", again.ID, "--data", e.dir("Alice"))
	e.waitFriendOf("Bob", "Alice")

	// An invite for one person.
	var one node.InviteView
	e.okJSON(&one, "invite", "create", "--label", "party", "--uses", "1", "--expires", "2d", "--json", "--data", e.dir("Alice"))
	if one.MaxUses != 1 || one.State != "active" || one.General || time.Until(one.ExpiresAt) > 49*time.Hour || time.Until(one.ExpiresAt) < 47*time.Hour {
		t.Fatalf("the invite made: %+v", one)
	}
	e.ok("add", one.Link, "--data", e.dir("Carol"))
	e.ok("accept", e.waitRequest("Alice", "Carol").ID, "--data", e.dir("Alice"))
	e.waitFriendOf("Carol", "Alice")
	// Dave is one too many, while Alice is online.
	code, words, _ := e.jsonFailure("add", one.Link, "--data", e.dir("Dave"))
	if code != node.CodeRefused || !strings.Contains(words, "ask them for a new one") {
		t.Errorf("Dave adds through a used invite: %s %q", code, words)
	}
	// And Erin while Alice is offline: her relay refuses it.
	e.stop("Alice")
	code, words, _ = e.jsonFailure("add", one.Link, "--data", e.dir("Erin"))
	if code != node.CodeRefused || !strings.Contains(words, "withdrawn by its owner") {
		t.Errorf("Erin adds through a used invite with Alice offline: %s %q", code, words)
	}
	e.up("Alice")

	// A revoked invite.
	var work node.InviteView
	e.okJSON(&work, "invite", "create", "--label", "work", "--json", "--data", e.dir("Alice"))
	e.ok("invite", "revoke", "work", "--data", e.dir("Alice"))
	code, words, _ = e.jsonFailure("add", work.Link, "--data", e.dir("Erin"))
	if code != node.CodeRefused || !strings.Contains(words, "ask them for a new one") {
		t.Errorf("Erin adds through a revoked invite: %s %q", code, words)
	}
	if code, _, _ := e.jsonFailure("invite", "create", "--uses", "-1", "--data", e.dir("Alice")); code != node.CodeBadArgument {
		t.Errorf("an invite for -1 people: %s", code)
	}
	if code, _, _ := e.jsonFailure("invite", "create", "--expires", "soon", "--data", e.dir("Alice")); code != node.CodeBadArgument {
		t.Errorf("an invite that lasts 'soon': %s", code)
	}

	var list []node.InviteView
	e.okJSON(&list, "invite", "list", "--json", "--data", e.dir("Alice"))
	states := map[string]string{}
	for _, v := range list {
		key := v.Label
		if v.General {
			key = "general"
		}
		states[key] = fmt.Sprintf("%s %d", v.State, v.Uses)
	}
	if states["general"] != "active 1" || states["party"] != "used up 1" || states["work"] != "revoked 0" {
		t.Errorf("Alice's invites: %v", states)
	}
	var reqs []node.RequestView
	e.okJSON(&reqs, "requests", "--json", "--data", e.dir("Alice"))
	for _, r := range reqs {
		if r.Name == "Dave" || r.Name == "Erin" {
			t.Errorf("a refused request reached Alice: %+v", r)
		}
	}
}

// requestState is the state of the request between who and name, as who
// sees it ("" when who has none).
func (e *e2e) requestState(who, dir, name string) string {
	e.t.Helper()
	var reqs []node.RequestView
	e.okJSON(&reqs, "requests", "--json", "--data", e.dir(who))
	if r := findRequest(reqs, dir, name); r != nil {
		return r.State
	}
	return ""
}

// shareFrom waits for who's share from name that lists item, and returns
// its id.
func (e *e2e) shareFrom(who, name, item string) string {
	e.t.Helper()
	var id string
	e.wait(who+"'s share of "+item+" from "+name, func() bool {
		var shares []node.ShareView
		e.okJSON(&shares, "shares", "--json", "--data", e.dir(who))
		for _, s := range shares {
			for _, it := range s.Items {
				if s.FromName == name && it.Name == item {
					id = s.ID
				}
			}
		}
		return id != ""
	})
	return id
}

func (e *e2e) pick(who, share string, args ...string) node.PickView {
	e.t.Helper()
	var picks []node.PickView
	e.okJSON(&picks, append([]string{"pick", share, "--json", "--data", e.dir(who)}, args...)...)
	if len(picks) != 1 {
		e.t.Fatalf("%s picks %v from %s: %+v", who, args, share, picks)
	}
	return picks[0]
}

// TestRequestsAndHousekeeping runs, on the real binaries, what a person
// does with requests and shares once made: cancelling a request stored at
// the relay (its recipient never sees it) and one delivered to the
// recipient's node (withdrawn there); a request withdrawn when the
// introducer's friendship with its recipient ends, on both sides; a
// decline undone; an unfriended person no longer offered as new, and
// befriended again by name; a share dismissed and put back.
func TestRequestsAndHousekeeping(t *testing.T) {
	e, addr := withRelay(t)
	for _, name := range []string{"Alice", "Bob", "Carol", "Dave", "Erin"} {
		e.ok("init", "--name", name, "--data", e.dir(name), "--rendezvous", addr)
		e.up(name)
	}
	e.befriend("Alice", "Bob", "Carol", "Dave", "Erin")
	e.ok("group", "create", "team", "--data", e.dir("Alice"))
	e.ok("group", "add", "team", "Carol", "Dave", "Erin", "--data", e.dir("Alice"))
	e.ok("share", "--to", "Bob", "--group", "team", "--data", e.dir("Alice"))
	bobsShare := e.shareFrom("Bob", "Alice", "Carol")

	// A request stored at the relay for Carol, offline, cancelled.
	e.stop("Carol")
	if p := e.pick("Bob", bobsShare, "Carol"); p.Sent != "relay" {
		t.Fatalf("Bob's request to offline Carol went %q", p.Sent)
	}
	e.ok("cancel", e.requestID("Bob", "Carol"), "--data", e.dir("Bob"))
	if st := e.requestState("Bob", "out", "Carol"); st != "cancelled" {
		t.Errorf("Bob's cancelled request shows %q", st)
	}

	// One delivered to Dave's node directly, cancelled: withdrawn there.
	if p := e.pick("Bob", bobsShare, "Dave"); p.Sent != "direct" && p.Sent != "circuit" {
		t.Fatalf("Bob's request to Dave went %q, not to his node", p.Sent)
	}
	e.waitRequest("Dave", "Bob")
	e.ok("cancel", e.requestID("Bob", "Dave"), "--data", e.dir("Bob"))
	e.wait("Dave to see Bob's request withdrawn", func() bool { return e.requestState("Dave", "in", "Bob") == "withdrawn" })
	if code, _, _ := e.jsonFailure("accept", e.requestID("Dave", "Bob"), "--data", e.dir("Dave")); code != node.CodeAlreadyAnswered {
		t.Errorf("Dave accepts a cancelled request: %s", code)
	}

	// Bob asks Erin; Alice then unfriends Erin: the introduction no longer
	// holds, and both sides see the request withdrawn.
	e.pick("Bob", bobsShare, "Erin")
	e.waitRequest("Erin", "Bob")
	e.ok("unfriend", "Erin", "--data", e.dir("Alice"))
	e.wait("Erin to see Bob's request withdrawn", func() bool { return e.requestState("Erin", "in", "Bob") == "withdrawn" })
	e.wait("Bob to see his request to Erin withdrawn", func() bool { return e.requestState("Bob", "out", "Erin") == "withdrawn" })

	// Carol comes back: what the relay held for her from Bob is gone.
	// Alice shares Dave with her after the cancel, so once that share is
	// in, everything before it was drained.
	e.up("Carol")
	e.ok("share", "--to", "Carol", "--friend", "Dave", "--data", e.dir("Alice"))
	carolsShare := e.shareFrom("Carol", "Alice", "Dave")
	if st := e.requestState("Carol", "in", "Bob"); st != "" {
		t.Errorf("Carol sees Bob's cancelled request (%s)", st)
	}

	// Carol asks Dave; Dave declines, then accepts after all.
	e.pick("Carol", carolsShare, "Dave")
	r := e.waitRequest("Dave", "Carol")
	e.ok("decline", r.ID, "--data", e.dir("Dave"))
	e.ok("accept", r.ID, "--data", e.dir("Dave"))
	e.waitFriendOf("Carol", "Dave")

	// Dave ends it. In Carol's inbox he is no longer new: --all skips
	// him, and picking him by name asks again, with a new request.
	e.ok("unfriend", "Carol", "--data", e.dir("Dave"))
	e.wait("Carol to learn the friendship ended", func() bool { return !e.hasFriend("Carol", "Dave") })
	var shares []node.ShareView
	e.okJSON(&shares, "shares", "--json", "--data", e.dir("Carol"))
	if len(shares) != 1 || shares[0].Items[0].State != "former" {
		t.Fatalf("Carol's inbox after the unfriend: %+v", shares)
	}
	if p := e.pick("Carol", carolsShare, "--all"); p.Request != "" || !strings.Contains(p.Reason, "no longer your friend") {
		t.Errorf("--all on a former friend: %+v", p)
	}
	again := e.pick("Carol", carolsShare, "Dave")
	if again.Request == "" || again.Request == r.ID {
		t.Errorf("picking a former friend by name: %+v (the first request was %s)", again, r.ID)
	}
	e.wait("Dave to see Carol's new request", func() bool { return e.requestState("Dave", "in", "Carol") == "pending" })

	// Bob dismisses Alice's share; --all still lists it; --undo puts it back.
	e.ok("dismiss", bobsShare, "--data", e.dir("Bob"))
	e.okJSON(&shares, "shares", "--json", "--data", e.dir("Bob"))
	if len(shares) != 0 {
		t.Errorf("a dismissed share is still listed: %+v", shares)
	}
	e.okJSON(&shares, "shares", "--all", "--json", "--data", e.dir("Bob"))
	if len(shares) != 1 || !shares[0].Dismissed {
		t.Errorf("shares --all: %+v", shares)
	}
	e.ok("dismiss", bobsShare, "--undo", "--data", e.dir("Bob"))
	e.okJSON(&shares, "shares", "--json", "--data", e.dir("Bob"))
	if len(shares) != 1 {
		t.Errorf("after --undo: %+v", shares)
	}
}

// requestID is the id of who's request with name (out, or else in).
func (e *e2e) requestID(who, name string) string {
	e.t.Helper()
	var reqs []node.RequestView
	e.okJSON(&reqs, "requests", "--json", "--data", e.dir(who))
	if r := findRequest(reqs, "out", name); r != nil {
		return r.ID
	}
	if r := findRequest(reqs, "in", name); r != nil {
		return r.ID
	}
	e.t.Fatalf("%s has no request with %s", who, name)
	return ""
}

// runEnv runs the CLI with extra environment variables.
func (e *e2e) runEnv(env []string, args ...string) (string, int) {
	e.t.Helper()
	cmd := exec.Command(e.kith, args...)
	cmd.Env = append(append(os.Environ(), "KITH_DATA="), env...)
	out, err := cmd.CombinedOutput()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		e.t.Fatalf("kith %v: %v", args, err)
	}
	return string(out), code
}

// upEnv starts name's daemon with extra environment variables.
func (e *e2e) upEnv(name string, env ...string) {
	e.t.Helper()
	cmd := exec.Command(e.kith, "up", "--data", e.dir(name), "--listen", "/ip4/127.0.0.1/tcp/0")
	cmd.Env = append(os.Environ(), env...)
	logf, _ := os.Create(filepath.Join(e.root, strings.ToLower(name)+".log"))
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		e.t.Fatal(err)
	}
	e.daemons[name] = cmd
	e.t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	e.waitLoggedIn(name)
}

// TestKeysAndBackup: a passphrase set on an unencrypted key and then
// needed to start; a backup made by the running daemon, refused with the
// wrong passphrase and restored on "another machine" (a new data
// directory) with its friends, groups and identity intact, where the node
// shares as before; a backup made with the daemon stopped.
func TestKeysAndBackup(t *testing.T) {
	e, addr := withRelay(t)
	for _, name := range []string{"Alice", "Bob", "Carol"} {
		e.ok("init", "--name", name, "--data", e.dir(name), "--rendezvous", addr)
		e.up(name)
	}
	e.befriend("Alice", "Bob", "Carol")
	e.ok("group", "create", "work", "--data", e.dir("Alice"))
	e.ok("group", "add", "work", "Carol", "--data", e.dir("Alice"))
	var before node.IDView
	e.okJSON(&before, "id", "--json", "--data", e.dir("Alice"))

	// A passphrase on the key: the next start needs it.
	if out, code := e.runEnv([]string{"KITH_NEW_PASSPHRASE=correct horse"}, "key", "passphrase", "--data", e.dir("Alice")); code != 0 {
		t.Fatalf("kith key passphrase: %s", out)
	}
	key, _ := os.ReadFile(filepath.Join(e.dir("Alice"), "key"))
	if !strings.Contains(string(key), "argon2id") {
		t.Fatalf("the key file is not encrypted:\n%s", key)
	}
	e.stop("Alice")
	if out, code := e.runEnv(nil, "up", "--data", e.dir("Alice")); code == 0 || !strings.Contains(out, "KITH_PASSPHRASE") {
		t.Errorf("kith up without the passphrase: exit %d\n%s", code, out)
	}
	if out, code := e.runEnv([]string{"KITH_PASSPHRASE=wrong"}, "up", "--data", e.dir("Alice")); code == 0 || !strings.Contains(out, "wrong passphrase") {
		t.Errorf("kith up with a wrong passphrase: exit %d\n%s", code, out)
	}
	e.upEnv("Alice", "KITH_PASSPHRASE=correct horse")

	// The running daemon makes the backup.
	backup := filepath.Join(e.root, "alice.kithbackup")
	if out, code := e.runEnv([]string{"KITH_BACKUP_PASSPHRASE=for the move"}, "key", "export", backup, "--data", e.dir("Alice")); code != 0 {
		t.Fatalf("kith key export: %s", out)
	}
	if st, err := os.Stat(backup); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("the backup file: %v %v", st, err)
	}
	if b, _ := os.ReadFile(backup); strings.Contains(string(b), "Carol") || strings.Contains(string(b), "work") {
		t.Fatal("the backup is readable without its passphrase")
	}
	e.stop("Alice") // moving: the old machine stops

	// The new machine.
	if out, code := e.runEnv([]string{"KITH_BACKUP_PASSPHRASE=not it"}, "init", "--restore", backup, "--data", e.dir("Alice2")); code == 0 || !strings.Contains(out, "does not open") {
		t.Errorf("restoring with the wrong passphrase: exit %d\n%s", code, out)
	}
	if out, code := e.runEnv([]string{"KITH_BACKUP_PASSPHRASE=for the move"}, "init", "--restore", backup, "--data", e.dir("Alice2")); code != 0 || !strings.Contains(out, before.ID) {
		t.Fatalf("kith init --restore: exit %d\n%s", code, out)
	}
	// The config's API port belongs to the old machine; this one picks its own.
	e.setConfig("Alice2", "api", "127.0.0.1:0")
	e.up("Alice2")
	var after node.IDView
	e.okJSON(&after, "id", "--json", "--data", e.dir("Alice2"))
	if after.ID != before.ID || after.Name != "Alice" {
		t.Fatalf("restored as %+v, was %+v", after, before)
	}
	e.waitFriends("Alice2", "Bob", "Carol")
	var groups []node.GroupView
	e.okJSON(&groups, "groups", "--json", "--data", e.dir("Alice2"))
	if len(groups) != 1 || groups[0].Name != "work" || len(groups[0].Members) != 1 {
		t.Fatalf("restored groups: %+v", groups)
	}
	e.ok("share", "--to", "Bob", "--group", "work", "--data", e.dir("Alice2"))
	e.shareFrom("Bob", "Alice", "Carol")

	// With the daemon stopped, the backup is made from the data directory.
	e.stop("Alice2")
	offline := filepath.Join(e.root, "offline.kithbackup")
	if out, code := e.runEnv([]string{"KITH_BACKUP_PASSPHRASE=again"}, "key", "export", offline, "--data", e.dir("Alice2")); code != 0 {
		t.Fatalf("kith key export with the daemon stopped: %s", out)
	}
	if out, code := e.runEnv([]string{"KITH_BACKUP_PASSPHRASE=again", "KITH_PASSPHRASE=on the third"}, "init", "--restore", offline, "--data", e.dir("Alice3")); code != 0 {
		t.Fatalf("restoring the offline backup: %s", out)
	}
	if key, _ := os.ReadFile(filepath.Join(e.dir("Alice3"), "key")); !strings.Contains(string(key), "argon2id") {
		t.Error("a restore with KITH_PASSPHRASE set left the key unencrypted")
	}
}

// TestMergedIntroducers: Alice and Dave both share Carol with Bob while
// Carol is offline; Bob picks her from both shares. The second pick adds
// Dave's introduction to the pending request; Carol, back, sees one
// request that both her friends introduced, verified, and accepts it.
func TestMergedIntroducers(t *testing.T) {
	e, addr := withRelay(t)
	for _, name := range []string{"Alice", "Bob", "Carol", "Dave"} {
		e.ok("init", "--name", name, "--data", e.dir(name), "--rendezvous", addr)
		e.up(name)
	}
	e.befriend("Alice", "Bob", "Carol")
	e.befriend("Dave", "Bob", "Carol")
	e.stop("Carol")
	e.ok("share", "--to", "Bob", "--friend", "Carol", "--data", e.dir("Alice"))
	e.ok("share", "--to", "Bob", "--friend", "Carol", "--data", e.dir("Dave"))
	var fromAlice, fromDave string
	e.wait("Bob's two shares", func() bool {
		var shares []node.ShareView
		e.okJSON(&shares, "shares", "--json", "--data", e.dir("Bob"))
		for _, s := range shares {
			switch s.FromName {
			case "Alice":
				fromAlice = s.ID
			case "Dave":
				fromDave = s.ID
			}
		}
		return fromAlice != "" && fromDave != ""
	})
	first := e.pick("Bob", fromAlice, "Carol")
	second := e.pick("Bob", fromDave, "Carol")
	if !second.Merged || second.Request == "" || second.Request == first.Request {
		t.Fatalf("the second pick: %+v (the first: %+v)", second, first)
	}
	if again := e.pick("Bob", fromDave, "Carol"); again.Request != "" {
		t.Errorf("picking again from Dave's share: %+v", again)
	}
	var reqs []node.RequestView
	e.okJSON(&reqs, "requests", "--json", "--data", e.dir("Bob"))
	states := map[string]string{}
	for _, r := range reqs {
		states[r.ID] = r.State + " " + r.Provenance
	}
	if states[first.Request] != "merged Alice shared Carol with you" || states[second.Request] != "pending Alice and Dave shared Carol with you" {
		t.Errorf("Bob's requests: %v", states)
	}

	e.up("Carol")
	var r node.RequestView
	e.wait("Carol's merged request", func() bool {
		var reqs []node.RequestView
		e.okJSON(&reqs, "requests", "--json", "--data", e.dir("Carol"))
		pending := 0
		for _, x := range reqs {
			if x.Name == "Bob" && x.State == "pending" {
				r, pending = x, pending+1
			}
		}
		return pending == 1 && len(r.Introducers) == 2
	})
	if r.Provenance != "Alice and Dave, your friends, shared you with Bob (verified)" {
		t.Errorf("Carol sees %q", r.Provenance)
	}
	e.ok("accept", r.ID, "--data", e.dir("Carol"))
	e.waitFriendOf("Bob", "Carol")
	e.okJSON(&reqs, "requests", "--json", "--data", e.dir("Bob"))
	for _, x := range reqs {
		if x.Name == "Carol" && x.State != "accepted" {
			t.Errorf("after the accept, Bob's request %s is %s", x.ID, x.State)
		}
	}
}

// TestAskMeFirst: Carol says she is asked first. Alice shares Carol and
// Dave with Bob: Bob gets Dave and a placeholder naming nobody, and the
// relay never sees Carol in that share; Carol, offline, finds "Alice
// wants to share you with Bob" waiting and approves; the share of Carol
// follows, with her consent, and Bob's request to her goes through. A
// second ask (to share her with Erin) she refuses: Erin gets nothing.
func TestAskMeFirst(t *testing.T) {
	e, addr := withRelay(t)
	for _, name := range []string{"Alice", "Bob", "Carol", "Dave", "Erin"} {
		e.ok("init", "--name", name, "--data", e.dir(name), "--rendezvous", addr)
	}
	e.setConfig("Alice", "profile_refresh", "1s")
	for _, name := range []string{"Alice", "Bob", "Carol", "Dave", "Erin"} {
		e.up(name)
	}
	e.befriend("Alice", "Bob", "Carol", "Dave", "Erin")
	var st node.SettingsView
	e.okJSON(&st, "settings", "--sharing", "ask", "--json", "--data", e.dir("Carol"))
	if st.Sharing != "ask" {
		t.Fatalf("Carol's settings: %+v", st)
	}
	// Alice's node learns Carol's policy from her newer profile.
	e.wait("Alice to hold Carol's newer profile", func() bool {
		var fs []node.FriendView
		e.okJSON(&fs, "friends", "--json", "--data", e.dir("Alice"))
		for _, f := range fs {
			if f.Name == "Carol" {
				return f.Sharing == "ask"
			}
		}
		return false
	})
	e.stop("Carol")

	var res node.ShareResult
	e.okJSON(&res, "share", "--to", "Bob", "--friend", "Carol", "--friend", "Dave", "--json", "--data", e.dir("Alice"))
	if len(res.Asked) != 1 || res.Asked[0].Name != "Carol" || res.Share == "" {
		t.Fatalf("Alice's share: %+v", res)
	}
	first := e.shareFrom("Bob", "Alice", "Dave")
	var shares []node.ShareView
	e.okJSON(&shares, "shares", "--json", "--data", e.dir("Bob"))
	if len(shares) != 1 || len(shares[0].Items) != 1 || shares[0].Awaiting != 1 {
		t.Fatalf("Bob's first share: %+v", shares)
	}

	// Carol comes back and approves.
	e.up("Carol")
	var asks []node.AskView
	e.wait("Carol to see Alice's ask", func() bool {
		e.okJSON(&asks, "consents", "--json", "--data", e.dir("Carol"))
		return len(asks) == 1 && asks[0].State == "pending"
	})
	if asks[0].Text != "Alice wants to share you with Bob" {
		t.Errorf("Carol reads %q", asks[0].Text)
	}
	e.ok("consent", "approve", asks[0].ID, "--data", e.dir("Carol"))
	second := e.shareFrom("Bob", "Alice", "Carol")
	if second == first {
		t.Fatal("Carol came in the first share")
	}
	e.pick("Bob", second, "Carol")
	r := e.waitRequest("Carol", "Bob")
	if r.Provenance != "Alice, your friend, shared you with Bob (verified)" {
		t.Errorf("Carol sees %q", r.Provenance)
	}
	e.ok("accept", r.ID, "--data", e.dir("Carol"))
	e.waitFriendOf("Bob", "Carol")

	// To Erin: Carol refuses, and Erin gets nothing.
	e.okJSON(&res, "share", "--to", "Erin", "--friend", "Carol", "--json", "--data", e.dir("Alice"))
	if len(res.Asked) != 1 || res.Share != "" {
		t.Fatalf("Alice's share of Carol alone with Erin: %+v", res)
	}
	e.wait("Carol to see the second ask", func() bool {
		e.okJSON(&asks, "consents", "--json", "--data", e.dir("Carol"))
		for _, a := range asks {
			if a.TargetName == "Erin" && a.State == "pending" {
				return true
			}
		}
		return false
	})
	for _, a := range asks {
		if a.TargetName == "Erin" {
			e.ok("consent", "refuse", a.ID, "--data", e.dir("Carol"))
		}
	}
	e.wait("Alice to learn the refusal", func() bool {
		var out []node.AskView
		e.okJSON(&out, "consents", "--json", "--data", e.dir("Alice"))
		for _, a := range out {
			if a.TargetName == "Erin" && a.State == "refused" {
				return true
			}
		}
		return false
	})
	e.okJSON(&shares, "shares", "--json", "--data", e.dir("Erin"))
	if len(shares) != 0 {
		t.Fatalf("Erin received %+v", shares)
	}
}

// TestWelcomePack: Alice makes a welcome pack of her group "colleagues"
// (Carol, Dave, who says nobody may share him, and Erin, who asks first),
// for three people, accepted on its own. Newcomer Nina redeems it: she
// learns what it promises, is befriended, and finds one inbox entry,
// Alice welcoming her with the group, Carol in it, Dave left out, Erin
// asked; she adds all. Olga redeems it and goes offline, and gets
// it when she is back; Quinn redeems it while Alice is offline. A fourth
// person is refused (used up), and so is anyone after a revoke.
func TestWelcomePack(t *testing.T) {
	e, addr := withRelay(t)
	people := []string{"Alice", "Carol", "Dave", "Erin", "Nina", "Olga", "Quinn", "Pete"}
	for _, name := range people {
		e.ok("init", "--name", name, "--data", e.dir(name), "--rendezvous", addr)
	}
	e.setConfig("Alice", "profile_refresh", "1s")
	for _, name := range people {
		e.up(name)
	}
	e.befriend("Alice", "Carol", "Dave", "Erin")
	e.ok("settings", "--sharing", "nobody", "--data", e.dir("Dave"))
	e.ok("settings", "--sharing", "ask", "--data", e.dir("Erin"))
	e.wait("Alice to learn Dave's and Erin's choices", func() bool {
		var fs []node.FriendView
		e.okJSON(&fs, "friends", "--json", "--data", e.dir("Alice"))
		got := map[string]string{}
		for _, f := range fs {
			got[f.Name] = f.Sharing
		}
		return got["Dave"] == "nobody" && got["Erin"] == "ask"
	})
	e.ok("group", "create", "colleagues", "--data", e.dir("Alice"))
	e.ok("group", "add", "colleagues", "Carol", "Dave", "Erin", "--data", e.dir("Alice"))
	var pack node.InviteView
	e.okJSON(&pack, "invite", "create", "--pack", "colleagues", "--accept", "--uses", "3", "--json", "--data", e.dir("Alice"))
	if pack.Pack != "colleagues" || !pack.AutoAccept || pack.MaxUses != 3 {
		t.Fatalf("the pack: %+v", pack)
	}

	// Nina redeems it.
	var req node.RequestView
	e.okJSON(&req, "add", pack.Link, "--json", "--data", e.dir("Nina"))
	if req.Pack != "colleagues" || req.PackSize != 3 {
		t.Errorf("Nina's request says %+v", req)
	}
	e.waitFriendOf("Nina", "Alice")
	welcome := func(who string) node.ShareView {
		var s node.ShareView
		e.wait(who+"'s welcome", func() bool {
			var shares []node.ShareView
			e.okJSON(&shares, "shares", "--json", "--data", e.dir(who))
			for _, x := range shares {
				if x.Pack == "colleagues" && x.FromName == "Alice" {
					s = x
					return true
				}
			}
			return false
		})
		return s
	}
	s := welcome("Nina")
	if len(s.Items) != 1 || s.Items[0].Name != "Carol" || s.Awaiting != 1 {
		t.Fatalf("Nina's welcome: %+v", s)
	}
	e.pick("Nina", s.ID, "--all")
	e.waitRequest("Carol", "Nina")
	var asks []node.AskView
	e.wait("Erin to be asked about Nina", func() bool {
		e.okJSON(&asks, "consents", "--json", "--data", e.dir("Erin"))
		return len(asks) == 1 && asks[0].TargetName == "Nina"
	})

	// Olga redeems it and goes offline at once: the acceptance and the
	// welcome wait for her at the relay.
	e.ok("add", pack.Link, "--data", e.dir("Olga"))
	e.stop("Olga")
	e.wait("Alice to accept Olga", func() bool { return e.hasFriend("Alice", "Olga") })
	e.up("Olga")
	e.waitFriendOf("Olga", "Alice")
	if s := welcome("Olga"); len(s.Items) != 1 || s.Items[0].Name != "Carol" {
		t.Fatalf("Olga's welcome: %+v", s)
	}

	// Quinn redeems it while Alice is offline: his request waits at the
	// relay, and the welcome follows when Alice is back.
	e.stop("Alice")
	e.ok("add", pack.Link, "--data", e.dir("Quinn"))
	e.upEnv("Alice")
	e.waitFriendOf("Quinn", "Alice")
	if s := welcome("Quinn"); len(s.Items) != 1 || s.Items[0].Name != "Carol" {
		t.Fatalf("Quinn's welcome: %+v", s)
	}

	// Three people used it: Pete is refused; revoked, it refuses anyone.
	code, words, _ := e.jsonFailure("add", pack.Link, "--data", e.dir("Pete"))
	if code != node.CodeRefused || !strings.Contains(words, "ask them for a new one") {
		t.Errorf("Pete redeems a used-up pack: %s %q", code, words)
	}
	var second node.InviteView
	e.okJSON(&second, "invite", "create", "--pack", "colleagues", "--json", "--data", e.dir("Alice"))
	e.ok("invite", "revoke", second.Token, "--data", e.dir("Alice"))
	if code, _, _ := e.jsonFailure("add", second.Link, "--data", e.dir("Pete")); code != node.CodeRefused {
		t.Errorf("Pete redeems a revoked pack: %s", code)
	}
	if code, _, _ := e.jsonFailure("invite", "create", "--pack", "nosuchgroup", "--data", e.dir("Alice")); code != node.CodeNotFound {
		t.Errorf("a pack of no group: %s", code)
	}
}
