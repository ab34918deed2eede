package simnet

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// TestReportPage: a run's page (kith-simnet run --html) is one file that
// fetches nothing, and a real headless Chromium renders its five charts
// with what the run measured; the screenshot is kept in artifacts/.
func TestReportPage(t *testing.T) {
	rep := RunTest(t, Config{Nodes: 20, Relays: 2, Shares: 30, Churn: 0.3, Adversaries: 1, Seed: 3, RelayRestart: true})
	var page bytes.Buffer
	if err := rep.WriteHTML(&page); err != nil {
		t.Fatal(err)
	}
	html := page.String()
	if m := regexp.MustCompile(`(?i)(src|href)\s*=|@import|url\(|https?:`).FindString(html); m != "" {
		t.Fatalf("the page refers to something outside itself: %q", m)
	}
	for _, want := range []string{"chart-delivery", "chart-latency", "chart-mailboxes", "chart-refusals", "chart-churn", "What the counts mean"} {
		if !strings.Contains(html, want) {
			t.Fatalf("the page has no %s", want)
		}
	}
	if len(rep.Timeline) < 2 || rep.Timeline[len(rep.Timeline)-1].Delivered == 0 {
		t.Fatalf("the timeline shows no delivery: %+v", rep.Timeline)
	}
	if rep.ShareLatency.N > 0 && sum(rep.ShareLatency.Buckets) != rep.ShareLatency.N {
		t.Fatalf("share latency buckets %v do not add up to %d", rep.ShareLatency.Buckets, rep.ShareLatency.N)
	}

	browser := chromium()
	if browser == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("CI=true but no Chromium: .ci/run installs Debian's chromium; the page test cannot be skipped in CI")
		}
		t.Skip("\n\n*** SKIPPING THE REPORT PAGE RENDERING: no chromium found (apt-get install chromium, or set KITH_CHROMIUM) ***\n")
	}
	dir := os.Getenv("KITH_ARTIFACTS")
	if dir == "" {
		dir = filepath.Join("..", "artifacts")
	}
	dir, _ = filepath.Abs(dir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "simnet-report.html")
	if err := os.WriteFile(file, page.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(browser), chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.UserDataDir(t.TempDir()), chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true), chromedp.Flag("no-first-run", true), chromedp.WindowSize(1400, 1000))
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancelAlloc()
	ctx, cancel := chromedp.NewContext(alloc)
	defer cancel()
	ctx, cancelT := context.WithTimeout(ctx, time.Minute)
	defer cancelT()
	if err := chromedp.Do(ctx, chromedp.Navigate("file://"+file), chromedp.WaitVisible(chromedp.CSS(`#chart-churn`))); err != nil {
		t.Fatal(err)
	}
	eval := func(js string) int {
		t.Helper()
		n, err := chromedp.Run(ctx, chromedp.Evaluate[int](js))
		if err != nil {
			t.Fatalf("%s: %v", js, err)
		}
		return n
	}
	charts := eval(`document.querySelectorAll("svg.chart").length`)
	fetched := eval(`performance.getEntriesByType("resource").length`)
	lines := eval(`document.querySelectorAll("#chart-delivery path.line, #chart-mailboxes path.line").length`)
	verdict, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(`#verdict`)))
	if err != nil {
		t.Fatal(err)
	}
	shot, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatal(err)
	}
	if charts != 5 {
		t.Fatalf("Chromium renders %d charts, not 5", charts)
	}
	if fetched != 0 {
		t.Fatalf("the page fetched %d resources", fetched)
	}
	if lines != 2+len(rep.PerRelay) {
		t.Fatalf("%d lines drawn for delivery and mailboxes, not %d", lines, 2+len(rep.PerRelay))
	}
	if rep.OK() != strings.Contains(verdict, "Every promise held") {
		t.Fatalf("the page says %q of a run whose OK is %v", verdict, rep.OK())
	}
	if err := os.WriteFile(filepath.Join(dir, "simnet-report.png"), shot, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("the page and its screenshot are in %s", dir)
}

func sum(xs []int) int {
	n := 0
	for _, x := range xs {
		n += x
	}
	return n
}

func chromium() string {
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
