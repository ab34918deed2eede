package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/kithnet/kith/node"
	"github.com/kithnet/kith/node/daemon"
	"github.com/kithnet/kith/rendezvous"
)

// findChromium returns the browser to drive, or "" if there is none.
func findChromium() string {
	if p := os.Getenv("KITH_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// TestWebInterface drives the web interface in a real headless Chromium
// against real daemons on loopback: Alice ticks a group and shares it with
// Bob, and her ticks and note survive a live event that arrives while she
// types; Bob's open inbox shows it without a reload; Bob ticks two friends
// and adds them; Carol's requests page says "Alice, your friend, shared
// you with Bob (verified)" and she accepts; Bob's friends page lists Carol,
// and comes back by itself when his daemon restarts at the same address; a
// damaged invite is refused in words; a phone-sized window keeps the
// header to one row.
func TestWebInterface(t *testing.T) {
	browser := findChromium()
	if browser == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("CI=true but no Chromium: .ci/run installs Debian's chromium; the browser test cannot be skipped in CI")
		}
		t.Skip("\n\n*** SKIPPING THE BROWSER TEST: no chromium found (apt-get install chromium, or set KITH_CHROMIUM) ***\n")
	}
	shots := os.Getenv("KITH_ARTIFACTS")
	if shots == "" {
		shots = filepath.Join("..", "..", "..", "artifacts")
	}
	shots, _ = filepath.Abs(filepath.Join(shots, "ui-screenshots"))
	if err := os.MkdirAll(shots, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshots of each page are saved in %s", shots)
	logs := filepath.Join(filepath.Dir(shots), "ui-logs")
	if err := os.MkdirAll(logs, 0o755); err != nil {
		t.Fatal(err)
	}
	logTo := func(name string) *slog.Logger {
		f, err := os.Create(filepath.Join(logs, name+".log"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { f.Close() })
		return slog.New(slog.NewTextHandler(f, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("the relay's and daemons' logs are in %s", logs)
		}
	})

	ctx := context.Background()
	root := t.TempDir()
	relay, err := rendezvous.OpenDaemon(ctx, rendezvous.DaemonOptions{
		DataDir: filepath.Join(root, "relay"), Listen: []ma.Multiaddr{ma.StringCast("/ip4/127.0.0.1/tcp/0")},
		Config: rendezvous.DefaultConfig(), Logger: logTo("relay"),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer relay.Close()
	raddr := relay.Addrs()[0].String()
	daemons := map[string]*daemon.Daemon{}
	for _, name := range []string{"Alice", "Bob", "Carol", "Dave", "Erin", "Frank"} {
		dir := filepath.Join(root, strings.ToLower(name))
		if _, err := daemon.Init(dir, name, []string{raddr}); err != nil {
			t.Fatal(err)
		}
		if name == "Alice" { // learns her friends' newer profiles within a second
			cfg, _ := daemon.ReadConfig(dir)
			cfg.ProfileRefresh = "1s"
			daemon.WriteConfig(dir, cfg)
		}
		d, err := daemon.Up(ctx, daemon.UpOptions{DataDir: dir, Listen: []string{"/ip4/127.0.0.1/tcp/0"}, API: "127.0.0.1:0", Logger: logTo(strings.ToLower(name))})
		if err != nil {
			t.Fatal(err)
		}
		defer d.Close()
		daemons[name] = d
		waitTrue(t, name+" logged in", d.Node.LoggedIn)
	}
	alice := daemons["Alice"].Node
	inv, _ := alice.IDView()
	for _, f := range []string{"Bob", "Carol", "Dave"} {
		if _, err := daemons[f].Node.AddInvite(ctx, inv.Invite, ""); err != nil {
			t.Fatal(err)
		}
		var id string
		waitTrue(t, "alice sees "+f, func() bool {
			for _, r := range alice.Requests() {
				if r.Name == f && r.State == "pending" {
					id = r.ID
				}
			}
			return id != ""
		})
		if _, err := alice.Accept(ctx, id); err != nil {
			t.Fatal(err)
		}
		waitTrue(t, f+" befriends alice", func() bool { return daemons[f].Node.IsFriend(alice.ID()) })
	}
	if err := alice.CreateGroup("work"); err != nil {
		t.Fatal(err)
	}
	if err := alice.AddToGroup("work", []string{"Carol", "Dave"}); err != nil {
		t.Fatal(err)
	}

	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(browser), chromedp.NoSandbox, chromedp.DisableGPU, chromedp.UserDataDir(t.TempDir()),
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true), chromedp.Flag("no-first-run", true), chromedp.Flag("disable-quic", true),
		chromedp.WindowSize(1100, 900))
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
	defer cancelAlloc()
	browserCtx, cancelBrowser := chromedp.NewContext(allocCtx)
	defer cancelBrowser()
	if err := chromedp.Do(browserCtx); err != nil {
		t.Fatalf("starting %s: %v", browser, err)
	}
	var cancels []context.CancelFunc
	defer func() {
		for _, c := range cancels {
			c()
		}
	}()
	tab := func(name string) context.Context {
		c, cancel := chromedp.NewContext(browserCtx)
		cancels = append(cancels, cancel)
		c, cancel = context.WithTimeout(c, 60*time.Second)
		cancels = append(cancels, cancel)
		if err := chromedp.Do(c, chromedp.Navigate(daemons[name].LoginURL())); err != nil {
			t.Fatalf("%s logs in: %v", name, err)
		}
		return c
	}
	shot := func(_ context.Context, file string) chromedp.Action[chromedp.Void] {
		return func(ctx context.Context, tg *chromedp.Target) (chromedp.Void, error) {
			buf, err := chromedp.FullScreenshot(100)(ctx, tg)
			if err != nil {
				return chromedp.Void{}, err
			}
			return chromedp.Void{}, os.WriteFile(filepath.Join(shots, file), buf, 0o644)
		}
	}
	// click finds and clicks sel in one step in the page, so that a live
	// re-render between the two cannot leave the click on a node gone.
	click := func(sel string) chromedp.Action[chromedp.Void] {
		return chromedp.Poll[chromedp.Void](fmt.Sprintf(`(() => { const e = document.querySelector(%s); if (!e || e.disabled) return false; e.click(); return true; })()`, strconv.Quote(sel)))
	}
	do := func(c context.Context, what string, actions ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(c, actions...); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	// text reads sel's text in one step in the page, as click does: a
	// live re-render between finding the node and reading it would leave
	// the read on a node gone.
	text := func(c context.Context, sel string) string {
		t.Helper()
		s, err := chromedp.Run(c, chromedp.Poll[string](fmt.Sprintf(`(() => { const e = document.querySelector(%s); return e ? e.innerText : null; })()`, strconv.Quote(sel))))
		if err != nil {
			t.Fatalf("reading %s: %v", sel, err)
		}
		return s
	}
	bob := daemons["Bob"].Node
	bobID, carolID := bob.ID().String(), daemons["Carol"].Node.ID().String()
	daveID := daemons["Dave"].Node.ID().String()

	// Bob keeps his inbox open.
	bobTab := tab("Bob")
	do(bobTab, "bob opens his inbox",
		chromedp.Navigate(strings.TrimSuffix(daemons["Bob"].URL, "/")+"/#inbox"),
		chromedp.WaitVisible(chromedp.CSS(`#inbox-empty`)),
		shot(bobTab, "1-bob-inbox-empty.png"))

	// Alice: me page, then the share dialog.
	aliceTab := tab("Alice")
	do(aliceTab, "alice's me page", chromedp.WaitVisible(chromedp.CSS(`#invite`)), shot(aliceTab, "2-alice-me.png"))
	// She makes an invite for two people, for a week.
	do(aliceTab, "alice makes an invite",
		chromedp.SendKeys(chromedp.CSS(`#invite-form input[name=label]`), "party"),
		chromedp.SendKeys(chromedp.CSS(`#invite-form input[name=days]`), "7"),
		chromedp.SendKeys(chromedp.CSS(`#invite-form input[name=uses]`), "2"),
		click(`#invite-form button[type=submit]`),
		chromedp.WaitVisible(chromedp.CSS(`#invite-list li[data-invite="party"]`)),
		shot(aliceTab, "2b-alice-invite.png"))
	if words := text(aliceTab, `#invite-list li[data-invite="party"]`); !strings.Contains(words, "active") || !strings.Contains(words, "0 of 2 used") {
		t.Fatalf("the new invite reads %q", words)
	}
	// The page drew itself again: the settings' choice is still shown.
	if checked, err := chromedp.Run(aliceTab, chromedp.Evaluate[bool](`document.querySelector('#settings-form input[value=friends]').checked`)); err != nil || !checked {
		t.Fatalf("after a re-render, Alice's sharing choice shows unticked (%v)", err)
	}
	// A damaged invite is refused in words, not in a decoder's.
	do(aliceTab, "alice pastes a damaged invite",
		chromedp.SetValue(chromedp.CSS(`#add-form textarea[name=invite]`), "kith:invite:CqgBCiYAJAgBEiA6U9eh"),
		click(`#add-form button[type=submit]`),
		chromedp.WaitVisible(chromedp.CSS(`#add-form .error`)))
	if words := text(aliceTab, `#add-form .error`); !strings.Contains(words, "invite link") || strings.Contains(words, "proto") || strings.Contains(words, "malformed") {
		t.Fatalf("a damaged invite is refused with %q", words)
	}
	do(aliceTab, "alice ticks the group work and bob, and types a note",
		chromedp.Navigate(strings.TrimSuffix(daemons["Alice"].URL, "/")+"/#share"),
		chromedp.WaitVisible(chromedp.CSS(`#share-form`)),
		click(`input[name=group][value="work"]`),
		click(fmt.Sprintf(`input[name=to][value=%q]`, bobID)),
		chromedp.SendKeys(chromedp.CSS(`#share-form input[name=note]`), "for the new project"))
	// While she is at it, Erin asks to be her friend: the live event
	// updates the page, and what she ticked and typed stays.
	if _, err := daemons["Erin"].Node.AddInvite(ctx, inv.Invite, ""); err != nil {
		t.Fatal(err)
	}
	do(aliceTab, "the live event arrives", chromedp.WaitVisible(chromedp.CSS(`#badge-requests:not([hidden])`)))
	time.Sleep(500 * time.Millisecond) // the re-render that follows the event
	kept, err := chromedp.Run(aliceTab, chromedp.Evaluate[string](`[document.querySelector('input[name=group][value="work"]').checked,
		document.querySelector('input[name=to][value="`+bobID+`"]').checked,
		document.querySelector('#share-form input[name=note]').value].join("|")`))
	if err != nil || kept != "true|true|for the new project" {
		t.Fatalf("after a live event the form holds %q (%v)", kept, err)
	}
	do(aliceTab, "alice shares the group work with bob",
		click(`#share-submit`),
		chromedp.WaitVisible(chromedp.CSS(`#share-targets li[data-target="Bob"]`)),
		shot(aliceTab, "3-alice-share-result.png"))
	if result := text(aliceTab, `#share-targets`); !strings.Contains(result, "Bob: delivered") {
		t.Fatalf("the share dialog says %q", result)
	}

	// Bob's open inbox shows the share without a reload; he ticks two.
	do(bobTab, "bob's inbox updates live",
		chromedp.WaitVisible(chromedp.CSS(`form[data-share] label[data-item="Carol"]`)),
		shot(bobTab, "4-bob-inbox-live.png"),
		click(fmt.Sprintf(`input[name=item][value=%q]`, carolID)),
		click(fmt.Sprintf(`input[name=item][value=%q]`, daveID)),
		click(`form[data-share] button[type=submit]`),
		chromedp.WaitVisible(chromedp.CSS(`.pick-result`)),
		shot(bobTab, "5-bob-picked.png"))

	// Carol sees who introduced Bob, verified, and accepts.
	carolTab := tab("Carol")
	do(carolTab, "carol's requests",
		chromedp.Navigate(strings.TrimSuffix(daemons["Carol"].URL, "/")+"/#requests"),
		chromedp.WaitVisible(chromedp.CSS(`div[data-request="Bob"] .verified`)),
		shot(carolTab, "6-carol-requests.png"))
	if provenance := text(carolTab, `div[data-request="Bob"] .verified`); !strings.Contains(provenance, "Alice, your friend, shared you with Bob (verified)") {
		t.Fatalf("carol's request says %q", provenance)
	}
	do(carolTab, "carol accepts; the request folds into the answered ones",
		click(`div[data-request="Bob"] button`),
		chromedp.WaitVisible(chromedp.CSS(`#requests-history summary`)),
		click(`#requests-history summary`),
		chromedp.WaitVisible(chromedp.CSS(`#requests-history li[data-request="Bob"] .state.accepted`)),
		shot(carolTab, "7-carol-accepted.png"))

	// Carol says, on her Me page, that she is asked first.
	do(carolTab, "carol's settings",
		chromedp.Navigate(strings.TrimSuffix(daemons["Carol"].URL, "/")+"/#me"),
		chromedp.WaitVisible(chromedp.CSS(`#settings-form`)),
		click(`#settings-form input[name=sharing][value=ask]`),
		click(`#settings-form button[type=submit]`),
		shot(carolTab, "7b-carol-settings.png"))
	waitTrue(t, "Carol's choice saved", func() bool { return daemons["Carol"].Node.Settings().Sharing == "ask" })
	// Alice learns it and shares her with Dave: Carol's page asks her.
	waitTrue(t, "Alice to learn Carol asks first", func() bool {
		for _, f := range alice.Friends(ctx) {
			if f.Name == "Carol" && f.Sharing == "ask" {
				return true
			}
		}
		return false
	})
	if res, err := alice.Share(ctx, node.ShareArgs{To: []string{"Dave"}, Friends: []string{"Carol"}}); err != nil || len(res.Asked) != 1 {
		t.Fatalf("Alice shares Carol with Dave: %+v %v", res, err)
	}
	do(carolTab, "carol is asked",
		chromedp.Navigate(strings.TrimSuffix(daemons["Carol"].URL, "/")+"/#requests"),
		chromedp.WaitVisible(chromedp.CSS(`#consents div[data-ask="Alice"]`)),
		shot(carolTab, "7c-carol-asked.png"))
	if words := text(carolTab, `#consents div[data-ask="Alice"]`); !strings.Contains(words, "Alice wants to share you with Dave") {
		t.Fatalf("Carol's page says %q", words)
	}
	do(carolTab, "carol agrees", click(`#consents div[data-ask="Alice"] button`), chromedp.WaitNotPresent(chromedp.CSS(`#consents`)))
	waitTrue(t, "Dave to receive Carol, with her consent", func() bool {
		for _, sh := range daemons["Dave"].Node.Shares() {
			for _, it := range sh.Items {
				if it.Name == "Carol" {
					return true
				}
			}
		}
		return false
	})

	// Bob's friends page lists Carol.
	do(bobTab, "bob's friends",
		chromedp.Navigate(strings.TrimSuffix(daemons["Bob"].URL, "/")+"/#friends"),
		chromedp.WaitVisible(chromedp.CSS(`tr[data-friend="Carol"]`)),
		shot(bobTab, "8-bob-friends.png"))
	// Bob blocked Dave (not a friend): the friends page lists him, and
	// one click unblocks him.
	if err := bob.Block(ctx, daveID, false); err != nil {
		t.Fatal(err)
	}
	do(bobTab, "bob's blocked list",
		chromedp.Reload(),
		chromedp.WaitVisible(chromedp.CSS(`#blocked-list li[data-blocked="Dave"]`)),
		shot(bobTab, "8b-bob-blocked.png"),
		click(`#blocked-list li[data-blocked="Dave"] button`),
		chromedp.WaitNotPresent(chromedp.CSS(`#blocked-list`)))
	if len(bob.Blocked()) != 0 {
		t.Fatalf("Bob unblocked Dave in the page, and the node still blocks %v", bob.Blocked())
	}

	// Bob's daemon restarts: at the same address, and the open page
	// reconnects by itself.
	bobURL := daemons["Bob"].URL
	daemons["Bob"].Close()
	do(bobTab, "the page notices", chromedp.Poll[chromedp.Void](`document.getElementById("conn").textContent.startsWith("reconnecting")`))
	again, err := daemon.Up(ctx, daemon.UpOptions{DataDir: filepath.Join(root, "bob"), Listen: []string{"/ip4/127.0.0.1/tcp/0"}, Logger: logTo("bob-again")})
	if err != nil {
		t.Fatal(err)
	}
	defer again.Close()
	if again.URL != bobURL {
		t.Fatalf("Bob's daemon came back at %s, was %s", again.URL, bobURL)
	}
	do(bobTab, "the page reconnects",
		chromedp.Poll[chromedp.Void](`document.getElementById("conn").textContent === "live"`),
		chromedp.WaitVisible(chromedp.CSS(`tr[data-friend="Carol"]`)))

	// A phone-sized window: the header keeps to one row, a friend's
	// buttons side by side.
	do(bobTab, "phone-sized friends",
		chromedp.EmulateViewport(390, 844),
		chromedp.Navigate(strings.TrimSuffix(bobURL, "/")+"/#friends"),
		chromedp.WaitVisible(chromedp.CSS(`tr[data-friend="Carol"]`)),
		shot(bobTab, "9-bob-friends-phone.png"))
	layout, err := chromedp.Run(bobTab, chromedp.Evaluate[[]float64](`(() => {
		const h = document.querySelector("header").getBoundingClientRect().height;
		const bs = [...document.querySelectorAll('tr[data-friend="Carol"] button')].map((b) => b.getBoundingClientRect().top);
		return [h, window.innerWidth, Math.max(...bs) - Math.min(...bs), document.documentElement.scrollWidth];
	})()`))
	if err != nil {
		t.Fatal(err)
	}
	if header, width, stacked, scroll := layout[0], layout[1], layout[2], layout[3]; header > 0.08*844 || stacked > 2 || scroll > width+1 {
		t.Fatalf("at 390x844: header %.0f px high (one row is under 68), buttons %.0f px apart vertically, page %.0f px wide in %.0f", header, stacked, scroll, width)
	}
	do(bobTab, "phone-sized inbox",
		chromedp.Navigate(strings.TrimSuffix(bobURL, "/")+"/#inbox"),
		chromedp.WaitVisible(chromedp.CSS(`#inbox-history summary`)),
		shot(bobTab, "10-bob-inbox-phone.png"))
	// Bob puts the share away.
	do(bobTab, "bob dismisses the share",
		click(`#inbox-history summary`),
		click(`#inbox-history button.dismiss`),
		chromedp.WaitVisible(chromedp.CSS(`#inbox-empty`)))
	if all := again.Node.AllShares(); len(all) != 1 || !all[0].Dismissed {
		t.Fatalf("after dismissing in the page, the node has %+v", all)
	}

	// Alice makes a welcome pack of her group "work" on her Groups page;
	// Frank, a newcomer, redeems it and adds everyone in it at once.
	do(aliceTab, "alice makes a welcome pack",
		chromedp.EmulateViewport(1100, 900),
		chromedp.Navigate(strings.TrimSuffix(daemons["Alice"].URL, "/")+"/#groups"),
		chromedp.WaitVisible(chromedp.CSS(`form[data-pack="work"]`)),
		click(`form[data-pack="work"] button`),
		chromedp.WaitVisible(chromedp.CSS(`form[data-pack="work"] textarea.pack-link`)),
		shot(aliceTab, "11-alice-welcome-pack.png"))
	link, err := chromedp.Run(aliceTab, chromedp.Evaluate[string](`document.querySelector('form[data-pack="work"] textarea.pack-link').value`))
	if err != nil || !strings.HasPrefix(link, "kith:invite:") {
		t.Fatalf("the pack's link: %q %v", link, err)
	}
	if _, err := daemons["Frank"].Node.AddInvite(ctx, link, ""); err != nil {
		t.Fatal(err)
	}
	frankTab := tab("Frank")
	do(frankTab, "frank's welcome",
		chromedp.Navigate(strings.TrimSuffix(daemons["Frank"].URL, "/")+"/#inbox"),
		chromedp.WaitVisible(chromedp.CSS(`form[data-share] h2.welcome`)),
		shot(frankTab, "12-frank-welcome.png"))
	if words := text(frankTab, `form[data-share] h2.welcome`); !strings.Contains(words, "Alice welcomed you with “work”") {
		t.Fatalf("Frank's inbox says %q", words)
	}
	do(frankTab, "frank adds everyone", click(`form[data-share] button.add-all`), chromedp.WaitVisible(chromedp.CSS(`.pick-result`)))
	waitTrue(t, "Frank's requests to the group", func() bool {
		out := 0
		for _, r := range daemons["Frank"].Node.Requests() {
			if r.Direction == "out" && r.IntroducerName == "Alice" {
				out++
			}
		}
		return out >= 1
	})
}

func waitTrue(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
