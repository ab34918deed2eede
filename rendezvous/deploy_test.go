package rendezvous

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// describing is a Registerer that records the name of every metric
// registered with it, vectors included (a vector shows in a scrape only
// once a label set is used).
type describing struct {
	names map[string]bool
}

var fqName = regexp.MustCompile(`fqName: "([a-z_:]+)"`)

func (d *describing) Register(c prometheus.Collector) error {
	ch := make(chan *prometheus.Desc, 16)
	go func() { c.Describe(ch); close(ch) }()
	for desc := range ch {
		if m := fqName.FindStringSubmatch(desc.String()); m != nil {
			d.names[m[1]] = true
		}
	}
	return nil
}

func (d *describing) MustRegister(cs ...prometheus.Collector) {
	for _, c := range cs {
		d.Register(c)
	}
}

func (d *describing) Unregister(prometheus.Collector) bool { return true }

// TestDeployNamesRealMetrics: every kith_relay_ metric the alert rules
// and the Grafana dashboard in deploy/ name is one the relay registers,
// and every dashboard query is valid PromQL (checked by promtool, which
// .ci/run installs; without it the check skips loudly, and fails with
// CI=true).
func TestDeployNamesRealMetrics(t *testing.T) {
	reg := &describing{names: map[string]bool{}}
	startRelay(t, nil, WithRegisterer(reg))
	used := regexp.MustCompile(`kith_relay_[a-z_]+`)
	suffix := regexp.MustCompile(`_(bucket|sum|count)$`)
	var exprs []string
	for _, f := range []string{"alerts.yml", "alerts_test.yml", "dashboard.json"} {
		b, err := os.ReadFile(filepath.Join("deploy", f))
		if err != nil {
			t.Fatal(err)
		}
		for _, name := range used.FindAllString(string(b), -1) {
			if !reg.names[name] && !reg.names[suffix.ReplaceAllString(name, "")] {
				t.Errorf("deploy/%s names %s, which the relay does not export", f, name)
			}
		}
		if f == "dashboard.json" {
			var d struct {
				Panels []struct {
					Title   string
					Targets []struct{ Expr string }
				}
			}
			if err := json.Unmarshal(b, &d); err != nil {
				t.Fatalf("dashboard.json: %v", err)
			}
			for _, p := range d.Panels {
				if len(p.Targets) == 0 {
					t.Errorf("panel %q has no query", p.Title)
				}
				for _, tg := range p.Targets {
					exprs = append(exprs, tg.Expr)
				}
			}
		}
	}
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("promtool is not installed (.ci/run installs Debian's prometheus)")
		}
		t.Skip("SKIPPED: promtool is not installed; the dashboard's queries were not parsed")
	}
	var rules strings.Builder
	rules.WriteString("groups:\n  - name: dashboard\n    rules:\n")
	for i, e := range exprs {
		e = strings.ReplaceAll(e, "$instance", ".*")
		q, _ := json.Marshal(e)
		fmt.Fprintf(&rules, "      - record: dashboard:query%d\n        expr: %s\n", i, q)
	}
	path := filepath.Join(t.TempDir(), "dashboard-rules.yml")
	if err := os.WriteFile(path, []byte(rules.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(promtool, "check", "rules", path).CombinedOutput(); err != nil {
		t.Fatalf("a dashboard query is not valid PromQL: %v\n%s", err, out)
	}
}
