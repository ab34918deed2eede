package simnet

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"
)

// Link is one class of network link.
type Link struct {
	Latency   time.Duration // one way
	Bandwidth int64         // bits per second, each direction
}

// Config describes a simulated network and its workload. The zero value
// of each field means its documented default.
type Config struct {
	Nodes       int     // personal nodes; default 100
	Relays      int     // rendezvous nodes; default 1
	Shares      int     // shares made during the workload; default 2*Nodes
	Churn       float64 // fraction of nodes that go offline and come back; default 0
	Adversaries int     // nodes that attack (forge, replay, claim, flood); default 0
	Seed        uint64  // makes the run reproducible; default 1

	ClusterSize int      // friends come in clusters of this size (workplaces); default 10
	NodeLink    Link     // default 20 ms, 20 Mbit/s
	RelayLink   Link     // default 5 ms, 1 Gbit/s
	Workload    Duration // virtual time over which shares are made; default 10 min
	Drain       Duration // extra virtual time allowed for delivery; default 20 min

	RelayRestart bool // restart relay 0 in the middle of the workload
	Partition    bool // cut a cluster off its relay for a while, then heal

	// Federation stories.
	Unfriend  float64  // fraction of users who end one friendship during the workload; default 0
	Move      float64  // fraction of users who move to another home relay during the workload (Relays >= 2); default 0
	RelayDown Duration // the last relay is down this long from the middle of the workload; default 0 (never)
	Homes     int      // home relays per user (at most Relays); default 1
	Discover  bool     // relays know only relay 0 and find the others through the DHT (else a full mesh of peers)

	Progress func(Progress) // called as the run advances; optional
	Log      *slog.Logger   // default: discard
	// Quiet keeps Main from printing the testing framework's PASS or
	// FAIL lines (the report and the exit code say it).
	Quiet bool
	// HeapProfile, if set, receives a heap profile (runtime/pprof) taken
	// when the workload ends, with every node and relay up: what a run's
	// memory is made of.
	HeapProfile io.Writer
}

// Duration is a time.Duration (a separate name keeps flag parsing simple).
type Duration = time.Duration

// Progress reports how far a run is.
type Progress struct {
	Phase   string  // "network", "friends", "workload", "drain", "done"
	Done    float64 // 0..1 within the phase
	Virtual time.Duration
}

func (c *Config) defaults() {
	if c.Nodes == 0 {
		c.Nodes = 100
	}
	if c.Relays == 0 {
		c.Relays = 1
	}
	if c.Shares == 0 {
		c.Shares = 2 * c.Nodes
	}
	if c.Seed == 0 {
		c.Seed = 1
	}
	if c.ClusterSize == 0 {
		c.ClusterSize = 10
	}
	if c.NodeLink == (Link{}) {
		c.NodeLink = Link{Latency: 20 * time.Millisecond}
	}
	if c.RelayLink == (Link{}) {
		c.RelayLink = Link{Latency: 5 * time.Millisecond}
	}
	if c.Workload == 0 {
		c.Workload = 10 * time.Minute
	}
	if c.Homes == 0 {
		c.Homes = 1
	}
	if c.Drain == 0 {
		c.Drain = 20 * time.Minute
	}
}

func (c *Config) validate() error {
	var errs []error
	if c.Nodes < 2 || c.Nodes > 20000 {
		errs = append(errs, fmt.Errorf("nodes must be 2..20000, not %d", c.Nodes))
	}
	if c.Relays < 1 || c.Relays > 64 {
		errs = append(errs, fmt.Errorf("relays must be 1..64, not %d", c.Relays))
	}
	if c.Shares < 0 {
		errs = append(errs, fmt.Errorf("shares must not be negative"))
	}
	if c.Churn < 0 || c.Churn > 1 {
		errs = append(errs, fmt.Errorf("churn must be 0..1, not %v", c.Churn))
	}
	if c.Adversaries < 0 || c.Adversaries > c.Nodes/2 {
		errs = append(errs, fmt.Errorf("adversaries must be 0..nodes/2, not %d", c.Adversaries))
	}
	if c.Unfriend < 0 || c.Unfriend > 1 {
		errs = append(errs, fmt.Errorf("unfriend must be 0..1, not %v", c.Unfriend))
	}
	if c.Move < 0 || c.Move > 1 {
		errs = append(errs, fmt.Errorf("move must be 0..1, not %v", c.Move))
	}
	if c.Move > 0 && c.Relays < 2 {
		errs = append(errs, fmt.Errorf("move needs at least 2 relays to move between"))
	}
	if c.Homes < 1 || c.Homes > c.Relays {
		errs = append(errs, fmt.Errorf("homes must be 1..relays (%d), not %d", c.Relays, c.Homes))
	}
	if c.RelayDown < 0 || c.RelayDown > c.Workload/2 {
		errs = append(errs, fmt.Errorf("relay-down must be 0..half the workload (%v), not %v", c.Workload/2, c.RelayDown))
	}
	if c.ClusterSize < 3 {
		errs = append(errs, fmt.Errorf("cluster size must be at least 3, not %d", c.ClusterSize))
	}
	return errors.Join(errs...)
}
