// Package simnet runs whole Kith networks (many personal nodes and
// rendezvous relays, built from the real node and rendezvous packages) in
// simulated time, to test and measure the system at a scale no one can
// assemble by hand.
//
// Every host is a real go-libp2p host speaking QUIC over a simulated
// network (github.com/marcopolo/simnet, through go-libp2p's x/simlibp2p),
// inside a testing/synctest bubble: time is virtual, so ten minutes of a
// thousand users' lives take seconds to minutes of wall time, and no real
// socket is opened. Datastores are in memory. Each class of node (relay,
// personal node) has its own latency and bandwidth.
//
// Run plays a generated workload: a friend graph in clusters (workplaces)
// built through the real invite flow, groups, shares of friends and whole
// groups to several targets, picks, accepts and declines; churn (nodes
// going offline and coming back on a schedule), a relay restart, a
// partition that heals, and adversaries that forge attestations, replay
// share ids, claim introductions they do not have, seal introductions with
// sock-puppet keys, and flood mailboxes with shares and with requests on a
// victim's own invite. It reports delivery ratios, duplicates, forged
// items accepted, what strangers' floods stored against the strangers'
// room (StrangerRooms), refusals by reason, latencies, mailbox depth and
// relay traffic, per relay and over time, and WriteHTML draws it. The seed
// fixes the network and every choice of the workload (README.md says what
// still varies between runs of one seed).
//
// RunScript plays a story written as a script (testdata/*.txt) with its
// expected outcomes; TestScenarios runs them all.
//
// Run and RunScript must run inside a synctest bubble: use RunTest from a
// test, or Main from a program (kith-simnet).
package simnet
