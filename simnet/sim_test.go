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

// TestShareWhenTheSharerGoesOffline: churn takes the sharer offline
// between the moment share chooses them and the moment it uses their
// node. share once asked the user for their node again there, got nil
// and crashed (2 of 4 runs with --churn 0.3); it uses the node it chose,
// which answers with errors once closed.
func TestShareWhenTheSharerGoesOffline(t *testing.T) {
	downed := 0
	testHookSharerChosen = func(w *world, u *user) {
		if downed < 3 {
			downed++
			w.down(u)
		}
	}
	defer func() { testHookSharerChosen = nil }()
	rep := RunTest(t, Config{Nodes: 12, Relays: 1, Shares: 8, Seed: 5})
	if downed == 0 {
		t.Fatal("no share chose a sharer: the hook never ran")
	}
	if rep.SharesAttempted == 0 {
		t.Fatalf("no share was made: %+v", rep)
	}
}
