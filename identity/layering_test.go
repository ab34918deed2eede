package identity

import (
	"os/exec"
	"strings"
	"testing"
)

// TestLayering enforces the module's dependency rules (DESIGN.md section 1):
// identity <- protocols <- {node, rendezvous} <- simnet; identity imports no
// networking; the node's book (its pure core) imports no networking and
// nothing of the node around it; the node and rendezvous libraries never
// import each other (their commands may compose both; tests are not
// checked).
func TestLayering(t *testing.T) {
	const mod = "github.com/kithnet/kith/"
	out, err := exec.Command("go", "list", "-deps", "-test=false",
		"-f", `{{.ImportPath}}{{range .Deps}} {{.}}{{end}}`, mod+"...").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	deps := map[string][]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		if len(f) > 0 && strings.HasPrefix(f[0], mod) {
			deps[f[0]] = f[1:]
		}
	}
	if len(deps) == 0 {
		t.Fatal("go list found no packages of the module")
	}
	networking := []string{
		"github.com/libp2p/go-libp2p/core/host",
		"github.com/libp2p/go-libp2p/core/network",
		"github.com/libp2p/go-libp2p/p2p/",
		"github.com/libp2p/go-libp2p-pubsub",
		"github.com/libp2p/go-libp2p-kad-dht",
		"github.com/quic-go/",
		"net/http",
	}
	type rule struct {
		from   string   // package path prefix, under the module
		banned []string // import path prefixes
		why    string
	}
	rules := []rule{
		{"identity", append(networking, mod+"protocols", mod+"node", mod+"rendezvous", mod+"simnet"), "identity imports no networking and nothing above it"},
		{"protocols", []string{mod + "node", mod + "rendezvous", mod + "simnet"}, "protocols sits below node and rendezvous"},
		{"node", []string{mod + "rendezvous", mod + "simnet"}, "node never imports rendezvous"},
		{"node/book", append(networking, mod+"protocols/client", mod+"node", mod+"rendezvous", mod+"simnet"),
			"the node's pure core imports no host, network or HTTP, and nothing of the shell around it"},
		{"rendezvous", []string{mod + "node", mod + "simnet"}, "rendezvous never imports node"},
	}
	checked := 0
	for pkg, ds := range deps {
		rel := strings.TrimPrefix(pkg, mod)
		for _, r := range rules {
			if rel != r.from && !strings.HasPrefix(rel, r.from+"/") {
				continue
			}
			// Commands are not libraries: `kith demo` runs a relay and six
			// nodes in one process, so the kith binary links both.
			if strings.Contains(rel, "/cmd/") && (r.from == "node" || r.from == "rendezvous") {
				continue
			}
			checked++
			for _, d := range ds {
				for _, b := range r.banned {
					if d == b || strings.HasPrefix(d, strings.TrimSuffix(b, "/")+"/") || (strings.HasSuffix(b, "/") && strings.HasPrefix(d, b)) {
						t.Errorf("%s depends on %s: %s", pkg, d, r.why)
					}
				}
			}
		}
	}
	if checked < 5 {
		t.Fatalf("only %d packages were checked; is the module layout as expected?", checked)
	}
}
