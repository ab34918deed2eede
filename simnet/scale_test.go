package simnet

import (
	"fmt"
	"os"
	"strconv"
	"testing"
)

// TestScale runs a bigger network when KITH_SIM_NODES is set.
func TestScale(t *testing.T) {
	n, _ := strconv.Atoi(os.Getenv("KITH_SIM_NODES"))
	if n == 0 {
		t.Skip("set KITH_SIM_NODES")
	}
	shares, _ := strconv.Atoi(os.Getenv("KITH_SIM_SHARES"))
	start := WallClock()
	last := ""
	rep := RunTest(t, Config{Nodes: n, Relays: 2, Shares: shares, Churn: 0.3, Adversaries: n / 50, Seed: 1,
		Progress: func(p Progress) {
			if p.Phase != last {
				fmt.Fprintf(os.Stderr, "%6.1fs wall  %6.0fs virtual  %s\n", (WallClock() - start).Seconds(), p.Virtual.Seconds(), p.Phase)
				last = p.Phase
			}
		}})
	rep.WriteTable(os.Stderr)
	if !rep.OK() {
		t.Fatal("promises broken")
	}
}
