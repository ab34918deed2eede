package protocols

import (
	"strings"
	"testing"
)

// TestBuildInfo: the version line names the Go version, and a commit
// when one is stamped; the agent version names the binary.
func TestBuildInfo(t *testing.T) {
	b := BuildInfo()
	if b.Go == "" || !strings.Contains(b.String(), b.Go) {
		t.Fatalf("build %+v reads %q", b, b.String())
	}
	stamped := Build{Version: "(devel)", Commit: "0123456789abcdef", Time: "2026-12-01T00:00:00Z", Modified: true, Go: "go1.26.8"}
	if got := stamped.String(); got != "(devel), commit 0123456789ab+modified, 2026-12-01T00:00:00Z, go1.26.8" {
		t.Fatalf("stamped build reads %q", got)
	}
	if got := AgentVersion("kith"); !strings.HasPrefix(got, "kith/") {
		t.Fatalf("agent version %q", got)
	}
}
