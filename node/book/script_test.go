package book

import (
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/datadriven"
	"github.com/libp2p/go-libp2p/core/peer"
	"google.golang.org/protobuf/proto"

	"github.com/kithnet/kith/identity"
	"github.com/kithnet/kith/protocols"
	"github.com/kithnet/kith/protocols/pb"
)

// TestBookScripts plays the stories in testdata/*.txt through several
// people's books, with no network: the messages between them are handed
// over by the script, in virtual time, and each step prints what the
// book decided in the user's words. Run with -rewrite to write the
// expected output afresh (then read the diff).
//
// Commands (people are named by the script; shares, requests and
// revocations get labels s1, r1, v1 as they are made):
//
//	people NAME...
//	befriend A B                       A asked, B accepted (no network)
//	group who=A name=G members=B,C
//	share from=A to=B[,C] [friends=D,E] [groups=G] [partial] [note=TEXT]
//	pick who=B share=s1 (all | friends=D,E) [message=TEXT]
//	deliver req=r1                     the request reaches its recipient
//	accept who=C req=r1                C accepts; the answer waits to be delivered
//	answer req=r1                      the answer reaches the requester
//	decline who=C req=r1
//	invite who=C                       C's invite, for add
//	add who=M invite=C [message=TEXT]  M asks C through C's invite
//	unfriend who=A friend=C            A's revocation gets a label
//	withdraw who=B share=s1 rev=v1     B hears that a share was withdrawn
//	block who=C peer=B
//	advance by=DUR
//	show who=B
func TestBookScripts(t *testing.T) {
	datadriven.Walk(t, "testdata", func(t *testing.T, path string) {
		if !strings.HasSuffix(path, ".txt") {
			t.Skip()
		}
		w := &bookWorld{people: map[string]*person{}, ids: map[peer.ID]string{}, shares: map[string]*shareSent{},
			requests: map[string]*sentRequest{}, revs: map[string][]byte{}, invites: map[string]string{}, now: t0}
		datadriven.RunTest(t, path, func(t *testing.T, td *datadriven.TestData) string { return w.run(t, td) })
	})
}

type bookWorld struct {
	people   map[string]*person
	ids      map[peer.ID]string
	order    []string
	now      time.Time
	shares   map[string]*shareSent
	nshares  int
	requests map[string]*sentRequest
	nreqs    int
	revs     map[string][]byte
	nrevs    int
	invites  map[string]string
}

type shareSent struct {
	id identity.ShareID
}

type sentRequest struct {
	from, to string
	id       protocols.RequestID
	wire     *pb.AddRequest
	answer   *pb.AddAnswer
}

func (w *bookWorld) who(t *testing.T, td *datadriven.TestData, key string) *person {
	name := w.arg(td, key)
	p := w.people[name]
	if p == nil {
		td.Fatalf(t, "nobody called %q", name)
	}
	return p
}

func (w *bookWorld) arg(td *datadriven.TestData, key string) string {
	if a, ok := td.Arg(key); ok && len(a.Vals) > 0 {
		return a.Vals[0]
	}
	return ""
}

func (w *bookWorld) list(t *testing.T, td *datadriven.TestData, key string) []peer.ID {
	var out []peer.ID
	for _, name := range strings.Split(w.arg(td, key), ",") {
		if name == "" {
			continue
		}
		p := w.people[name]
		if p == nil {
			td.Fatalf(t, "nobody called %q", name)
		}
		out = append(out, p.me)
	}
	return out
}

// says prints an error in the user's words, without the ids that change
// from run to run.
func (w *bookWorld) says(err error) string {
	s := err.Error()
	for p, name := range w.ids {
		s = strings.ReplaceAll(s, p.String(), name)
		s = strings.ReplaceAll(s, identity.ShortID(p), name)
	}
	return s
}

func (w *bookWorld) run(t *testing.T, td *datadriven.TestData) string {
	switch td.Cmd {
	case "people":
		for _, a := range td.CmdArgs {
			p := newPerson(t, strings.ToUpper(a.Key[:1])+a.Key[1:])
			w.people[a.Key], w.ids[p.me] = p, a.Key
			w.order = append(w.order, a.Key)
		}
		return ""
	case "befriend":
		if len(td.CmdArgs) != 2 {
			td.Fatalf(t, "befriend A B")
		}
		a, b := w.people[td.CmdArgs[0].Key], w.people[td.CmdArgs[1].Key]
		befriendAt(t, a, b, w.now)
		return ""
	case "group":
		p := w.who(t, td, "who")
		name := w.arg(td, "name")
		if p.Group(name) == nil {
			muts, err := p.CreateGroup(name)
			if err != nil {
				return w.says(err) + "\n"
			}
			p.apply(t, muts)
		}
		muts, err := p.AddToGroup(name, w.list(t, td, "members"))
		if err != nil {
			return w.says(err) + "\n"
		}
		p.apply(t, muts)
		return ""
	case "share":
		return w.share(t, td)
	case "pick":
		return w.pick(t, td)
	case "deliver":
		return w.deliver(t, td)
	case "accept":
		r := w.requests[w.arg(td, "req")]
		p := w.who(t, td, "who")
		f, ans, muts, err := p.Accept(r.id, w.now)
		if err != nil {
			return w.says(err) + "\n"
		}
		p.apply(t, muts)
		r.answer = ans
		return fmt.Sprintf("%s and %s are friends\n", w.ids[p.me], w.ids[f.ID])
	case "answer":
		r := w.requests[w.arg(td, "req")]
		p := w.people[r.from]
		if r.answer == nil {
			return "no answer to deliver\n"
		}
		f, muts, err := p.ReceiveAnswer(r.answer, w.now)
		if err != nil {
			return w.says(err) + "\n"
		}
		p.apply(t, muts)
		return fmt.Sprintf("%s: %s accepted; friends since now\n", r.from, w.ids[f.ID])
	case "decline":
		r := w.requests[w.arg(td, "req")]
		p := w.who(t, td, "who")
		muts, err := p.Decline(r.id, t0)
		if err != nil {
			return w.says(err) + "\n"
		}
		p.apply(t, muts)
		return fmt.Sprintf("%s declined (%s is not told)\n", w.arg(td, "who"), r.from)
	case "invite":
		p := w.who(t, td, "who")
		in, muts, err := p.Invite(nil, w.now)
		if err != nil {
			return w.says(err) + "\n"
		}
		p.apply(t, muts)
		w.invites[w.arg(td, "who")] = in
		return ""
	case "add":
		p := w.who(t, td, "who")
		link := w.invites[w.arg(td, "invite")]
		r, _, muts, err := p.AddByInvite(link, w.arg(td, "message"), w.now)
		if err != nil {
			return w.says(err) + "\n"
		}
		p.apply(t, muts)
		return w.newRequest(w.arg(td, "who"), w.ids[r.Peer], r) + "\n"
	case "unfriend":
		p := w.who(t, td, "who")
		raw, muts, err := p.Unfriend(w.people[w.arg(td, "friend")].me, w.now)
		if err != nil {
			return w.says(err) + "\n"
		}
		p.apply(t, muts)
		w.nrevs++
		label := fmt.Sprintf("v%d", w.nrevs)
		w.revs[label] = raw
		return fmt.Sprintf("revocation %s\n", label)
	case "withdraw":
		p := w.who(t, td, "who")
		s := w.shares[w.arg(td, "share")]
		muts, err := p.Withdraw(&pb.Withdrawal{ItemId: s.id[:], ItemKind: pb.ItemKind_SHARE, Revocation: w.revs[w.arg(td, "rev")]})
		if err != nil {
			return w.says(err) + "\n"
		}
		p.apply(t, muts)
		return fmt.Sprintf("%d records changed\n", len(muts))
	case "block":
		p := w.who(t, td, "who")
		p.apply(t, p.Block(w.people[w.arg(td, "peer")].me))
		return ""
	case "advance":
		d, err := time.ParseDuration(w.arg(td, "by"))
		if err != nil {
			td.Fatalf(t, "%v", err)
		}
		w.now = w.now.Add(d)
		return ""
	case "show":
		return w.show(w.arg(td, "who"))
	}
	td.Fatalf(t, "unknown command %s", td.Cmd)
	return ""
}

func (w *bookWorld) share(t *testing.T, td *datadriven.TestData) string {
	from := w.who(t, td, "from")
	req := ShareRequest{To: w.list(t, td, "to"), Friends: w.list(t, td, "friends"), Partial: td.HasArg("partial"), Note: w.arg(td, "note")}
	if g := w.arg(td, "groups"); g != "" {
		req.Groups = strings.Split(g, ",")
	}
	s, failed, err := from.BuildShare(req, w.now)
	var b strings.Builder
	for _, f := range failed {
		fmt.Fprintf(&b, "not shared: %s\n", w.says(fmt.Errorf("%s", from.Failure(f).Reason)))
	}
	if err != nil {
		return b.String() + w.says(err) + "\n"
	}
	if s == nil {
		return b.String() + "nothing sent\n"
	}
	w.nshares++
	label := fmt.Sprintf("s%d", w.nshares)
	w.shares[label] = &shareSent{id: s.ID}
	fmt.Fprintf(&b, "share %s\n", label)
	for _, t2 := range s.Targets {
		to := w.people[w.ids[t2.Peer]]
		rs, muts, err := to.ReceiveShare(s.Raw, nil, w.now)
		if err != nil {
			fmt.Fprintf(&b, "%s: refused: %s\n", w.ids[t2.Peer], w.says(err))
			continue
		}
		to.apply(t, muts)
		fmt.Fprintf(&b, "%s: %s\n", w.ids[t2.Peer], w.items(to, rs))
	}
	return b.String()
}

// items lists a received share's items with their states.
func (w *bookWorld) items(p *person, rs *ReceivedShare) string {
	var parts []string
	for _, it := range rs.Items {
		parts = append(parts, fmt.Sprintf("%s %s", p.Name(it.Peer), p.ItemState(rs, it.Peer)))
	}
	return fmt.Sprintf("from %s: %s", rs.FromName, strings.Join(parts, ", "))
}

func (w *bookWorld) pick(t *testing.T, td *datadriven.TestData) string {
	p := w.who(t, td, "who")
	s := w.shares[w.arg(td, "share")]
	if s == nil {
		td.Fatalf(t, "no share %s", w.arg(td, "share"))
	}
	results, muts, err := p.Pick(p.Share(s.id), w.list(t, td, "friends"), td.HasArg("all"), w.arg(td, "message"), w.now)
	if err != nil {
		return w.says(err) + "\n"
	}
	p.apply(t, muts)
	var b strings.Builder
	for _, r := range results {
		if r.Request == nil {
			fmt.Fprintf(&b, "%s: skipped: %s\n", r.Name, r.Reason)
			continue
		}
		fmt.Fprintf(&b, "%s\n", w.newRequest(w.arg(td, "who"), w.ids[r.Peer], r.Request))
	}
	return b.String()
}

// newRequest labels a request from `from` to `to` and says so.
func (w *bookWorld) newRequest(from, to string, r *Request) string {
	var wire pb.AddRequest
	proto.Unmarshal(r.Wire, &wire)
	for label, old := range w.requests {
		if old.id == r.ID {
			return fmt.Sprintf("%s: request %s again", to, label)
		}
	}
	w.nreqs++
	label := fmt.Sprintf("r%d", w.nreqs)
	w.requests[label] = &sentRequest{from: from, to: to, id: r.ID, wire: &wire}
	return fmt.Sprintf("%s: request %s", to, label)
}

func (w *bookWorld) deliver(t *testing.T, td *datadriven.TestData) string {
	r := w.requests[w.arg(td, "req")]
	if r == nil {
		td.Fatalf(t, "no request %s", w.arg(td, "req"))
	}
	to := w.people[r.to]
	got, muts, err := to.ReceiveRequest(r.wire, w.now)
	if err != nil {
		return fmt.Sprintf("%s: dropped: %s\n", r.to, w.says(err))
	}
	to.apply(t, muts)
	if len(muts) == 0 {
		return fmt.Sprintf("%s: already has it\n", r.to)
	}
	return fmt.Sprintf("%s: %s\n", r.to, w.describe(to, got))
}

// describe says a request as its holder sees it.
func (w *bookWorld) describe(p *person, r *Request) string {
	s := fmt.Sprintf("%s %s, %s", map[Direction]string{Incoming: "from", Outgoing: "to"}[r.Direction], p.Name(r.Peer), r.State)
	switch {
	case r.Introducer != "" && r.IntroducerVerified:
		s += fmt.Sprintf(", introduced by %s (verified)", r.IntroducerName)
	case r.Introducer != "":
		s += fmt.Sprintf(", introduced by %s", r.IntroducerName)
	case r.ViaInvite:
		s += ", through an invite"
	}
	if r.Message != "" {
		s += fmt.Sprintf(", %q", r.Message)
	}
	return s
}

func (w *bookWorld) show(name string) string {
	p := w.people[name]
	var b strings.Builder
	var friends []string
	for _, f := range p.Friends() {
		s := f.Name
		if f.IntroducedByName != "" {
			s += " (introduced by " + f.IntroducedByName + ")"
		}
		friends = append(friends, s)
	}
	sort.Strings(friends)
	fmt.Fprintf(&b, "friends: %s\n", strings.Join(friends, ", "))
	for _, g := range p.Groups() {
		var members []string
		for _, m := range g.Members {
			members = append(members, p.Name(m))
		}
		fmt.Fprintf(&b, "group %s: %s\n", g.Name, strings.Join(members, ", "))
	}
	var reqs []string
	for _, r := range p.Requests() {
		reqs = append(reqs, "request "+w.describe(p, r))
	}
	sort.Strings(reqs)
	for _, r := range reqs {
		fmt.Fprintln(&b, r)
	}
	var shares []string // sorted: shares received at the same virtual time have random ids
	for _, s := range p.Shares() {
		shares = append(shares, "share "+w.items(p, s))
	}
	sort.Strings(shares)
	for _, s := range shares {
		fmt.Fprintln(&b, s)
	}
	return b.String()
}
