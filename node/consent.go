package node

import (
	"context"
	"fmt"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/kithnet/kith/identity"
	"github.com/kithnet/kith/node/book"
	"github.com/kithnet/kith/protocols"
	"github.com/kithnet/kith/protocols/pb"
)

// AskView is one "may I share you?" (`kith consents`): in, a friend asks
// the user; out, the user asked a friend.
type AskView struct {
	ID        string `json:"id"`
	Direction string `json:"direction"` // in or out
	Friend    string `json:"friend"`
	Name      string `json:"name"` // the friend's
	Target    string `json:"target"`
	// TargetName is whom the friend would share the user with (in), or
	// whom the user would share the friend with (out).
	TargetName string `json:"target_name"`
	Note       string `json:"note,omitempty"`
	// State is pending, approved, shared (out: the share followed),
	// refused, or expired.
	State     string `json:"state"`
	CreatedAt string `json:"created_at"`
	// Text says it in a person's words.
	Text string `json:"text"`
}

// Consents lists the asks in and out, newest first.
func (n *Node) Consents() []AskView {
	n.mu.Lock()
	defer n.mu.Unlock()
	out := []AskView{}
	for _, a := range n.book.Asks() {
		out = append(out, n.askView(a))
	}
	return out
}

// askView is a's view; n.mu must be held.
func (n *Node) askView(a *book.Ask) AskView {
	v := AskView{ID: a.ID.String(), Direction: string(a.Direction), Friend: a.Friend.String(), Name: n.book.Name(a.Friend),
		Target: a.Target.String(), TargetName: a.TargetName, Note: a.Note, State: a.State, CreatedAt: a.CreatedAt.UTC().Format(time.RFC3339)}
	if a.Expired(n.clock()) {
		v.State = "expired"
	}
	if v.TargetName == "" {
		v.TargetName = n.book.Name(a.Target)
	}
	if a.Direction == book.Incoming {
		v.Text = fmt.Sprintf("%s wants to share you with %s", v.Name, v.TargetName)
	} else {
		v.Text = fmt.Sprintf("you asked %s whether you may share them with %s", v.Name, v.TargetName)
	}
	return v
}

// AnswerConsent approves or refuses a friend's ask to share the user
// (id or a unique prefix), and sends the answer. On approval the friend's
// node shares the user with the one person named, and nobody else.
func (n *Node) AnswerConsent(ctx context.Context, id string, approve bool) (AskView, error) {
	var a *book.Ask
	err := n.do(func(b *book.Book) ([]book.Mutation, error) {
		found, err := b.FindAsk(id)
		if err != nil {
			return nil, err
		}
		var muts []book.Mutation
		a, muts, err = b.AnswerAsk(found.ID, approve, n.clock())
		return muts, err
	})
	if err != nil {
		return AskView{}, err
	}
	n.sendAsk(ctx, a)
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.askView(a), nil
}

// sendAsk sends an ask (out) or an answer (in) to the friend: to their
// node if it is online, else through their home relays, which store it.
// Unsent, it stays queued and flush sends it again.
func (n *Node) sendAsk(ctx context.Context, a *book.Ask) {
	n.mu.Lock()
	msg, err := n.book.ConsentMessage(a, n.clock())
	f := n.book.Friend(a.Friend)
	n.mu.Unlock()
	if err != nil || f == nil {
		n.log.Info("a consent message cannot be made", "friend", a.Friend, "err", err)
		return
	}
	m := &pb.AddMessage{Msg: &pb.AddMessage_Consent{Consent: msg}}
	n.resolveHomes(ctx, []peer.ID{a.Friend})
	for _, relay := range n.relaysOf(a.Friend) {
		addrs := n.directAddrs(ctx, relay, []*pb.PresenceAsk{{Peer: []byte(a.Friend), Attestation: f.Attestation}})
		if ad := addrs[a.Friend]; len(ad) > 0 {
			if how, err := n.sendDirect(ctx, a.Friend, ad, m); err == nil {
				n.note(func(b *book.Book) []book.Mutation { return b.MarkAskSent(a, how) })
				return
			}
		}
		if resp, err := n.toRelay(ctx, relay, m); err == nil && resp != nil {
			n.note(func(b *book.Book) []book.Mutation { return b.MarkAskSent(a, book.SentRelay) })
			return
		}
	}
}

// receiveConsent takes a consent message (from the relay or directly):
// an ask is shown to the user; an approval makes the share it allows at
// once, a refusal is told.
func (n *Node) receiveConsent(m *pb.ConsentMessage, from peer.ID) error {
	c, err := protocols.DecodeConsentMessage(m)
	if err != nil {
		return err
	}
	if from != "" && c.From != from {
		return protocols.Errorf(pb.Status_UNAUTHORIZED, "a consent message signed by %s was sent by %s", c.From, from)
	}
	var a *book.Ask
	fresh := false
	err = n.do(func(b *book.Book) ([]book.Mutation, error) {
		var muts []book.Mutation
		var err error
		a, muts, err = b.ReceiveConsent(c, n.clock())
		fresh = len(muts) > 0
		return muts, err
	})
	if err != nil {
		n.log.Info("consent message dropped", "from", c.From, "err", err)
		return err
	}
	if !fresh {
		return nil
	}
	name, target := n.name(a.Friend), a.TargetName
	if target == "" {
		target = n.name(a.Target)
	}
	switch {
	case a.Direction == book.Incoming:
		n.publish("consent", a.ID.String(), a.Friend, fmt.Sprintf("%s wants to share you with %s", name, target))
	case a.State == book.AskRefused:
		n.publish("consent", a.ID.String(), a.Friend, fmt.Sprintf("%s would rather not be shared with %s", name, target))
	case a.State == book.AskApproved:
		n.publish("consent", a.ID.String(), a.Friend, fmt.Sprintf("%s agreed to be shared with %s", name, target))
		go n.shareApproved(n.ctx, a)
	}
	return nil
}

// shareApproved makes the share a friend agreed to: them, with their
// consent, to the one target they agreed to.
func (n *Node) shareApproved(ctx context.Context, a *book.Ask) {
	key := "ask/" + a.ID.String()
	n.mu.Lock()
	st := a.State
	busy := n.claimMaking(key)
	n.mu.Unlock()
	if st != book.AskApproved || busy {
		return
	}
	defer n.releaseMaking(key)
	res, err := n.shareWith(ctx, book.ShareRequest{To: []peer.ID{a.Target}, Friends: []peer.ID{a.Friend},
		Consents: map[peer.ID][]byte{a.Friend: a.Consent}, Note: a.Note})
	if err != nil && (res == nil || res.Share == "") {
		n.log.Info("the share a friend agreed to was not made", "friend", a.Friend, "err", err)
		return
	}
	n.note(func(b *book.Book) []book.Mutation { return b.MarkAskShared(a) })
}

// flushAsks sends the asks and answers still queued, and makes the
// shares approvals allowed that were not made yet.
func (n *Node) flushAsks(ctx context.Context) {
	n.mu.Lock()
	send, share := n.book.UnsentAsks(n.clock())
	n.mu.Unlock()
	for _, a := range send {
		n.sendAsk(ctx, a)
	}
	for _, a := range share {
		n.shareApproved(ctx, a)
	}
}

// claimMaking marks the share keyed key as being made, and reports
// whether it already was (by another goroutine: the receipt of an answer
// and flush can race). Called with n.mu held.
func (n *Node) claimMaking(key string) bool {
	if n.making == nil {
		n.making = map[string]bool{}
	}
	if n.making[key] {
		return true
	}
	n.making[key] = true
	return false
}

// shareKey, requestKey and answerKey name the sending of a share, of
// r's request and of its answer among the claims.
func shareKey(id identity.ShareID) string { return "share/" + id.String() }
func requestKey(r *book.Request) string   { return "request/" + r.ID.String() }
func answerKey(r *book.Request) string    { return "answer/" + r.ID.String() }

func (n *Node) releaseMaking(key string) {
	n.mu.Lock()
	delete(n.making, key)
	n.mu.Unlock()
}
