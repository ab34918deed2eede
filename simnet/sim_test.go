package simnet

import (
	"os"
	"testing"
)

func TestSmallNetwork(t *testing.T) {
	rep := RunTest(t, Config{Nodes: 30, Relays: 2, Shares: 40, Churn: 0.3, Adversaries: 2, Seed: 7,
		RelayRestart: true, Partition: true})
	rep.WriteTable(os.Stderr)
	if !rep.OK() {
		t.Fatalf("the network broke a promise: %+v", rep)
	}
}
