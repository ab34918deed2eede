package rendezvous

import (
	"crypto/sha256"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/datadriven"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/kithnet/kith/identity"
	protopb "github.com/kithnet/kith/protocols/pb"
	"github.com/kithnet/kith/rendezvous/pb"
)

// TestMailboxScripts drives the mailbox model, the pure core of store and
// forward, through the stories in testdata/mailbox/*.txt: puts,
// acknowledgements, revocations, expiry and held items in virtual time,
// printing what each step decided and the mutations it asked for. Run
// with -rewrite to write the expected output afresh (then read the diff).
//
// Commands:
//
//	new items=N bytes=N strangers=N stranger-bytes=N ttl=DUR [store-items=N reserve=F]
//	put to=NAME id=ID [kind=share|request|answer|withdrawal] [deps=A,B] [from=NAME] [hold] [payload=N]
//	ack to=NAME seqs=1,2
//	persist to=NAME seq=N
//	revoke att=A
//	advance by=DUR
//	expire
//	show
func TestMailboxScripts(t *testing.T) {
	datadriven.Walk(t, "testdata/mailbox", func(t *testing.T, path string) {
		w := &mailboxWorld{peers: map[string]peer.ID{}, names: map[peer.ID]string{}, revoked: map[identity.AttestationID]bool{}, now: t0}
		datadriven.RunTest(t, path, w.run)
	})
}

type mailboxWorld struct {
	m       *mailboxes
	now     time.Time
	peers   map[string]peer.ID
	names   map[peer.ID]string
	revoked map[identity.AttestationID]bool
}

func (w *mailboxWorld) peer(t *testing.T, name string) peer.ID {
	if p, ok := w.peers[name]; ok {
		return p
	}
	p := testPeer(t)
	w.peers[name], w.names[p] = p, name
	return p
}

// att names an attestation by a word of the script.
func att(name string) identity.AttestationID { return sha256.Sum256([]byte(name)) }

func (w *mailboxWorld) run(t *testing.T, td *datadriven.TestData) string {
	intArg := func(key string, def int) int {
		if a, ok := td.Arg(key); ok {
			n, err := strconv.Atoi(a.Vals[0])
			if err != nil {
				td.Fatalf(t, "%s: %v", key, err)
			}
			return n
		}
		return def
	}
	strArg := func(key, def string) string {
		if a, ok := td.Arg(key); ok {
			return a.Vals[0]
		}
		return def
	}
	durArg := func(key string) time.Duration {
		d, err := time.ParseDuration(strArg(key, "0s"))
		if err != nil {
			td.Fatalf(t, "%s: %v", key, err)
		}
		return d
	}
	if w.m == nil && td.Cmd != "new" {
		td.Fatalf(t, "the script must start with new")
	}
	switch td.Cmd {
	case "new":
		w.m = newMailboxes(Quota{Items: intArg("items", 100), Bytes: int64(intArg("bytes", 1<<20)),
			StrangerItems: intArg("strangers", 100), StrangerBytes: int64(intArg("stranger-bytes", 1<<20))},
			durArg("ttl"), func(a identity.AttestationID) bool { return w.revoked[a] })
		if n := intArg("store-items", 0); n > 0 {
			cfg := DefaultConfig()
			cfg.StoreItems = n
			if r, ok := td.Arg("reserve"); ok {
				fmt.Sscan(r.Vals[0], &cfg.StoreReserve)
			}
			w.m.budget = cfg.budget()
			w.m.budget.Bytes, w.m.budget.StrangerBytes = 0, 0
		}
		return ""
	case "put":
		kinds := map[string]protopb.ItemKind{"share": protopb.ItemKind_SHARE, "request": protopb.ItemKind_ADD_REQUEST,
			"answer": protopb.ItemKind_ADD_ANSWER, "withdrawal": protopb.ItemKind_WITHDRAWAL}
		kind, ok := kinds[strArg("kind", "share")]
		if !ok {
			td.Fatalf(t, "unknown kind")
		}
		it := newItem{recipient: w.peer(t, strArg("to", "")), id: strArg("id", ""), kind: kind,
			payload: make([]byte, intArg("payload", 10)), hold: td.HasArg("hold")}
		if f := strArg("from", ""); f != "" {
			it.from = w.peer(t, f)
		}
		if a, ok := td.Arg("deps"); ok {
			for _, d := range strings.Split(a.Vals[0], ",") {
				it.deps = append(it.deps, att(d))
			}
		}
		res, muts := w.m.put(it, w.now)
		return w.putResult(res) + w.mutations(muts)
	case "ack":
		var seqs []uint64
		for _, s := range strings.Split(strArg("seqs", ""), ",") {
			n, _ := strconv.ParseUint(s, 10, 64)
			seqs = append(seqs, n)
		}
		acked, muts := w.m.ack(w.peer(t, strArg("to", "")), seqs, w.now)
		return fmt.Sprintf("acked %v\n", acked) + w.mutations(muts)
	case "persist":
		ok, muts := w.m.persist(w.peer(t, strArg("to", "")), uint64(intArg("seq", 0)))
		return fmt.Sprintf("persisted %v\n", ok) + w.mutations(muts)
	case "revoke":
		a := att(strArg("att", ""))
		w.revoked[a] = true
		touched, muts := w.m.withdraw(&identity.Revocation{AttestationID: a}, w.now, nil)
		var names []string
		for _, p := range touched {
			names = append(names, w.names[p])
		}
		return fmt.Sprintf("touched %v\n", names) + w.mutations(muts)
	case "advance":
		w.now = w.now.Add(durArg("by"))
		return fmt.Sprintf("now +%s\n", w.now.Sub(t0))
	case "expire":
		dropped, muts := w.m.expire(w.now)
		return fmt.Sprintf("dropped %d\n", dropped) + w.mutations(muts)
	case "show":
		return w.show()
	}
	td.Fatalf(t, "unknown command %s", td.Cmd)
	return ""
}

func (w *mailboxWorld) putResult(r putResult) string {
	out := map[putOutcome]string{putStored: "stored", putDupPending: "duplicate, pending", putDupDelivered: "duplicate, delivered",
		putWithdrawn: "withdrawn", putOverQuota: "full"}[r.outcome]
	if r.outcome == putOverQuota {
		out += ": " + r.fullRoom()
	}
	if r.seq != 0 {
		out += fmt.Sprintf(" seq=%d", r.seq)
	}
	if r.held {
		out += " held"
	}
	return out + "\n"
}

// mutations prints the datastore writes a step asked for, sorted (the
// model visits some maps in no fixed order; a batch is atomic anyway), with
// the script's names for peers.
func (w *mailboxWorld) mutations(muts []mutation) string {
	var lines []string
	for _, m := range muts {
		k := m.key.String()
		for name, p := range w.peers {
			k = strings.ReplaceAll(k, peerText(p), name)
		}
		for _, prefix := range []string{prefixMboxFrom, prefixMboxDep} {
			if strings.HasPrefix(k, prefix) {
				k = prefix + "..." // under a sender or an attestation id
			}
		}
		op := "put"
		if m.del {
			op = "del"
		}
		lines = append(lines, "  "+op+" "+k)
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n") + map[bool]string{true: "\n"}[len(lines) > 0]
}

func (w *mailboxWorld) show() string {
	var names []string
	for name, p := range w.peers {
		if w.m.boxes[p] != nil {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	var b strings.Builder
	for _, name := range names {
		box := w.m.boxes[w.peers[name]]
		fmt.Fprintf(&b, "%s: %d waiting (%d from strangers), %d bytes, next seq %d\n", name, len(box.items), box.strangers, box.bytes, box.nextSeq)
		for _, it := range box.items {
			rec := box.ids[it.id]
			fmt.Fprintf(&b, "  %d %s %s", it.seq, it.id, strings.ToLower(protopb.ItemKind_name[int32(rec.kind)]))
			if it.held != nil {
				b.WriteString(" held")
			}
			b.WriteString("\n")
		}
		var settled []string
		for id, rec := range box.ids {
			if rec.state != pb.ItemState_PENDING {
				settled = append(settled, fmt.Sprintf("%s %s", id, strings.ToLower(rec.state.String())))
			}
		}
		sort.Strings(settled)
		if len(settled) > 0 {
			fmt.Fprintf(&b, "  settled in memory: %s\n", strings.Join(settled, ", "))
		}
	}
	fmt.Fprintf(&b, "all: %d waiting (%d from strangers), %d bytes\n", w.m.total, w.m.strangers, w.m.bytes)
	return b.String()
}
