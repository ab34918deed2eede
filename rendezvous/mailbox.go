package rendezvous

import (
	"crypto/sha256"
	"encoding/binary"
	"maps"
	"slices"
	"sort"
	"strings"
	"time"

	ds "github.com/ipfs/go-datastore"
	"github.com/libp2p/go-libp2p/core/peer"
	"google.golang.org/protobuf/proto"

	"github.com/kithnet/kith/identity"
	protopb "github.com/kithnet/kith/protocols/pb"
	"github.com/kithnet/kith/rendezvous/pb"
)

// The mailbox model is the pure core of store-and-forward. It holds every
// recipient's pending items (metadata only; payloads live in the
// datastore), their id records, and which pending items rest on which
// attestations. Each operation takes `now`, updates the model and returns
// the datastore mutations that make the change durable; the store writes
// them in one batch. Nothing here does I/O.
//
// Memory holds what is pending, not the history: once an item is settled
// (acknowledged or withdrawn) its id record stays in memory only for
// recentTTL, long enough for the sender's wait and a quick retry, and then
// lives on disk alone until it expires. The store recalls a record from
// disk before putting an id the model does not know (see recall), and
// hands withdraw the delivered items that may rest on the revoked
// attestation (see storedDep). Kept in memory, every delivered item's
// record would cost about 1 KB for the 30 days it lives.

// Quota bounds one recipient's mailbox, in two rooms by what the sender
// has proven. The friends' room holds items resting on a friendship with
// the recipient (shares, answers, withdrawals); the strangers' room holds
// add requests, which rest on an introduction or an invite: whoever
// introduced them, their senders are not the recipient's friends yet. A
// full strangers' room refuses strangers only, so strangers, however many,
// cannot crowd out what friends send.
type Quota struct {
	Items int   // pending items in the friends' room
	Bytes int64 // and their stored bytes
	// StrangerItems and StrangerBytes bound the strangers' room.
	StrangerItems int
	StrangerBytes int64
}

// Budget bounds all mailboxes of a relay together: a per-recipient quota
// alone lets identities made up by the thousand (a target needs only an
// attestation, which one person can sign with two keys) fill the disk with
// a mailbox each. Zero Items or Bytes are unbounded. Strangers' items may
// fill the store only up to StrangerItems and StrangerBytes (when Items,
// or Bytes, is bounded): the rest is a reserve that only friends' items
// may use.
type Budget struct {
	Items int   // pending items in all mailboxes
	Bytes int64 // their stored bytes
	// StrangerItems and StrangerBytes: the part of Items and Bytes that
	// strangers' items may take (counting every item waiting, friends'
	// included).
	StrangerItems int
	StrangerBytes int64
}

// isStranger reports whether an item of kind belongs in the strangers'
// room: an add request, whose sender is not the recipient's friend.
func isStranger(kind protopb.ItemKind) bool { return kind == protopb.ItemKind_ADD_REQUEST }

// mutation is one datastore write the model asks for.
type mutation struct {
	key   ds.Key
	value []byte
	del   bool
}

// Expiry times are Unix seconds, as stored.

type mailItem struct {
	seq      uint64
	id       string
	size     int
	expires  int64
	stranger bool // in the strangers' room (see Quota)
	deps     []identity.AttestationID
	// held is set while the item lives only in memory (see put): what
	// the datastore would hold, and the InboxItem to push.
	held *heldItem
}

// heldItem is an item kept in memory for an online recipient: nothing of
// it is written unless the recipient does not acknowledge it in time. A
// relay killed while it holds an item forgets it (its sender has been told
// nothing and retries); the item's seq may then be given again after the
// restart, which is harmless: nodes acknowledge by seq within a session
// and drop what they already have by item id.
type heldItem struct {
	stored *pb.StoredItem // marshalled and written if it must be kept
}

type idRecord struct {
	seq     uint64
	state   pb.ItemState
	kind    protopb.ItemKind
	expires int64
	deps    []identity.AttestationID
	from    peer.ID // empty in records written before layout 2
}

type box struct {
	nextSeq uint64     // the next seq to assign; seqs start at 1
	items   []mailItem // pending, by ascending seq
	bytes   int64
	held    int // items[i].held != nil
	// strangers and strangerBytes are the items of the strangers' room
	// (items[i].stranger), counted in items and bytes too.
	strangers     int
	strangerBytes int64
	// ids holds the records of pending items and of recently settled
	// ones (see forget); idsPeak is the most it held since it was last
	// rebuilt (Go maps do not shrink).
	ids     map[string]idRecord
	idsPeak int
}

type depRef struct {
	recipient peer.ID
	id        string
}

// depRefs is the set of pending items resting on one attestation, with
// their expiry. The first is kept inline: most attestations carry one or
// a few, and a Go map holding one entry costs about 370 bytes (items that
// each rest on six friendships of their own cost 3.4 KB of memory apiece
// with a map per attestation, 1.4 KB with this; 1.1 KB when attestations
// are shared).
type depRefs struct {
	first    depRef
	firstExp int64
	has      bool
	rest     map[depRef]int64
}

func (d *depRefs) add(r depRef, exp int64) {
	switch {
	case d.has && d.first == r:
		d.firstExp = exp
	case !d.has && !d.inRest(r):
		d.first, d.firstExp, d.has = r, exp, true
	default: // new to the rest, or already there
		if d.rest == nil {
			d.rest = map[depRef]int64{}
		}
		d.rest[r] = exp
	}
}

func (d *depRefs) inRest(r depRef) bool {
	_, ok := d.rest[r]
	return ok
}

func (d *depRefs) remove(r depRef) {
	if d.has && d.first == r {
		d.first, d.firstExp, d.has = depRef{}, 0, false
		return
	}
	delete(d.rest, r)
}

func (d *depRefs) len() int {
	n := len(d.rest)
	if d.has {
		n++
	}
	return n
}

// each calls f with every item and its expiry; f may remove the one it is
// given.
func (d *depRefs) each(f func(r depRef, exp int64)) {
	if d.has {
		f(d.first, d.firstExp)
	}
	for r, exp := range d.rest {
		f(r, exp)
	}
}

// index notes that r's pending item id rests on att until exp.
func (m *mailboxes) index(att identity.AttestationID, r peer.ID, id string, exp int64) {
	refs := m.deps[att]
	if refs == nil {
		refs = &depRefs{}
		m.deps[att] = refs
	}
	refs.add(depRef{r, id}, exp)
}

// mailboxes is the model of every mailbox of one relay. It is not safe for
// concurrent use; the store serialises access.
type mailboxes struct {
	boxes map[peer.ID]*box
	// deps lists the pending items resting on each attestation (the
	// delivered ones are found on disk, see storedDep).
	deps    map[identity.AttestationID]*depRefs
	quota   Quota
	ttl     time.Duration
	revoked func(identity.AttestationID) bool
	budget  Budget
	total   int   // pending items in all mailboxes
	bytes   int64 // and their stored bytes
	// strangers counts the pending items of every strangers' room.
	strangers int
	// nonEmpty counts the mailboxes with an item pending.
	nonEmpty int
	// recent lists the settled id records still in memory, oldest first;
	// forget drops those settled more than recentTTL ago.
	recent    []settledRef
	recentTTL time.Duration
}

// settledRef is an id record that was settled (or recalled) at a time.
type settledRef struct {
	recipient peer.ID
	id        string
	at        int64 // Unix nanoseconds
}

// defaultRecentTTL is how long a settled id record stays in memory unless
// the store says otherwise (it says deliver_wait + recentSlack).
const defaultRecentTTL = 12 * time.Second

func newMailboxes(q Quota, ttl time.Duration, revoked func(identity.AttestationID) bool) *mailboxes {
	if revoked == nil {
		revoked = func(identity.AttestationID) bool { return false }
	}
	return &mailboxes{
		boxes: map[peer.ID]*box{}, deps: map[identity.AttestationID]*depRefs{},
		quota: q, ttl: ttl, revoked: revoked, recentTTL: defaultRecentTTL,
	}
}

func (m *mailboxes) box(r peer.ID) *box {
	b := m.boxes[r]
	if b == nil {
		b = &box{nextSeq: 1, ids: map[string]idRecord{}}
		m.boxes[r] = b
	}
	return b
}

// newItem is an item to store for a recipient.
type newItem struct {
	recipient peer.ID
	id        string // stable id: share id, request id; retries are idempotent
	kind      protopb.ItemKind
	payload   []byte
	from      peer.ID
	deps      []identity.AttestationID
	refused   []*protopb.Failure
	// hold keeps the item in memory only, for a recipient online now
	// whose mailbox has nothing else stored: it is pushed at once, and
	// if it is acknowledged before the sender is answered, the relay
	// writes only its id record (no item written, then deleted). The
	// store persists it when that does not happen (see store.persist).
	hold bool
}

// putOutcome says what put did.
type putOutcome int

const (
	putStored       putOutcome = iota // stored now
	putDupPending                     // the same id is already waiting
	putDupDelivered                   // the same id was delivered and acknowledged
	putWithdrawn                      // it rests on a revoked attestation
	putOverQuota                      // the recipient's mailbox is full
)

type putResult struct {
	outcome   putOutcome
	seq       uint64
	held      bool // stored in memory only, for now
	storeFull bool // putOverQuota because the relay's Budget is spent
	stranger  bool // the item was for the strangers' room
}

// fullRoom names what was full for a putOverQuota: "friends",
// "strangers" (a recipient's rooms), "store" or "store_strangers" (the
// relay's Budget, all of it or the strangers' part).
func (r putResult) fullRoom() string {
	switch {
	case r.storeFull && r.stranger:
		return "store_strangers"
	case r.storeFull:
		return "store"
	case r.stranger:
		return "strangers"
	}
	return "friends"
}

// put stores it unless its id was seen, it rests on a revoked attestation,
// or the mailbox is full.
func (m *mailboxes) put(it newItem, now time.Time) (putResult, []mutation) {
	// A recipient's box is made only when something is stored for it,
	// so that refused items leave nothing behind.
	b := m.boxes[it.recipient]
	if b == nil {
		b = &box{nextSeq: 1}
	}
	if rec, ok := b.ids[it.id]; ok && now.Unix() < rec.expires {
		switch rec.state {
		case pb.ItemState_PENDING:
			return putResult{outcome: putDupPending, seq: rec.seq, held: b.isHeld(rec.seq)}, nil
		case pb.ItemState_ACKED:
			return putResult{outcome: putDupDelivered, seq: rec.seq}, nil
		default:
			return putResult{outcome: putWithdrawn, seq: rec.seq}, nil
		}
	}
	for _, d := range it.deps {
		if m.revoked(d) {
			return putResult{outcome: putWithdrawn}, nil
		}
	}
	expires := now.Add(m.ttl).Unix()
	seq := b.nextSeq
	itemBytes, _ := proto.Marshal(&protopb.InboxItem{
		Seq: seq, Id: []byte(it.id), Kind: it.kind, Payload: it.payload,
		From: []byte(it.from), StoredAt: now.Unix(), Refused: it.refused,
	})
	stored := &pb.StoredItem{Item: itemBytes, ExpiresAt: expires, Id: []byte(it.id)}
	for _, d := range it.deps {
		stored.Deps = append(stored.Deps, d[:])
	}
	// A held item is marshalled only if it must be written.
	var storedBytes []byte
	size := 0
	if it.hold {
		size = proto.Size(stored)
	} else {
		storedBytes, _ = proto.Marshal(stored)
		size = len(storedBytes)
	}
	stranger := isStranger(it.kind)
	if m.roomFull(b, stranger, size) {
		return putResult{outcome: putOverQuota, stranger: stranger}, nil
	}
	if m.budgetFull(stranger, size) {
		return putResult{outcome: putOverQuota, storeFull: true, stranger: stranger}, nil
	}
	if b.ids == nil {
		b.ids = map[string]idRecord{}
		m.boxes[it.recipient] = b
	}
	b.nextSeq++
	rec := idRecord{seq: seq, state: pb.ItemState_PENDING, kind: it.kind, expires: expires, deps: it.deps, from: it.from}
	mi := mailItem{seq: seq, id: it.id, size: size, expires: expires, deps: it.deps, stranger: stranger}
	var muts []mutation
	if it.hold {
		mi.held = &heldItem{stored: stored}
		b.held++
	} else {
		muts = append([]mutation{
			{key: mboxKey(it.recipient, seq), value: storedBytes},
			{key: mboxIDKey(it.recipient, it.id), value: rec.marshal()},
			b.metaMutation(it.recipient),
		}, indexEntries(it.recipient, it.id, rec)...)
	}
	b.items = append(b.items, mi)
	m.count(b, mi, 1)
	b.ids[it.id] = rec
	b.idsPeak = max(b.idsPeak, len(b.ids))
	for _, d := range it.deps {
		m.index(d, it.recipient, it.id, expires)
	}
	return putResult{outcome: putStored, seq: seq, held: it.hold}, muts
}

// roomFull reports whether the room of b an item of size bytes goes in
// (the strangers' or the friends') has no room for it.
func (m *mailboxes) roomFull(b *box, stranger bool, size int) bool {
	if stranger {
		return b.strangers >= m.quota.StrangerItems || b.strangerBytes+int64(size) > m.quota.StrangerBytes
	}
	return len(b.items)-b.strangers >= m.quota.Items || b.bytes-b.strangerBytes+int64(size) > m.quota.Bytes
}

// budgetFull reports whether the relay's Budget has no room for an item
// of size bytes: all of it for a friend's item, the strangers' part for a
// stranger's.
func (m *mailboxes) budgetFull(stranger bool, size int) bool {
	items, bytes := m.budget.Items, m.budget.Bytes
	if stranger {
		if items > 0 {
			items = max(m.budget.StrangerItems, 0)
			if items == 0 {
				return true
			}
		}
		if bytes > 0 {
			bytes = max(m.budget.StrangerBytes, 0)
			if bytes == 0 {
				return true
			}
		}
	}
	return (items > 0 && m.total >= items) || (bytes > 0 && m.bytes+int64(size) > bytes)
}

// count adds it to (sign 1) or removes it from (sign -1) the counts of b
// and of every mailbox.
func (m *mailboxes) count(b *box, it mailItem, sign int) {
	before := b.bytes
	b.bytes += int64(sign * it.size)
	switch { // every item has bytes: a box holds bytes exactly when it holds items
	case before == 0 && b.bytes > 0:
		m.nonEmpty++
	case before > 0 && b.bytes == 0:
		m.nonEmpty--
	}
	m.total += sign
	m.bytes += int64(sign * it.size)
	if it.stranger {
		b.strangers += sign
		b.strangerBytes += int64(sign * it.size)
		m.strangers += sign
	}
}

// persist writes r's held item seq to the datastore, as put would have.
// It reports false if seq is no longer waiting (acknowledged or
// withdrawn meanwhile) or was never held.
func (m *mailboxes) persist(r peer.ID, seq uint64) (bool, []mutation) {
	b := m.boxes[r]
	if b == nil {
		return false, nil
	}
	i := b.find(seq)
	if i < 0 || b.items[i].held == nil {
		return false, nil
	}
	it := &b.items[i]
	h := it.held
	it.held = nil
	b.held--
	rec := b.ids[it.id]
	return true, append([]mutation{
		{key: mboxKey(r, seq), value: mustMarshal(h.stored)},
		{key: mboxIDKey(r, it.id), value: rec.marshal()},
		b.metaMutation(r),
	}, indexEntries(r, it.id, rec)...)
}

// metaMutation writes the box's next seq, so that seqs are never reused.
func (b *box) metaMutation(r peer.ID) mutation {
	return mutation{key: mboxMetaKey(r), value: mustMarshal(&pb.BoxMeta{NextSeq: b.nextSeq})}
}

// persistHeld writes every item held for r.
func (m *mailboxes) persistHeld(r peer.ID) []mutation {
	b := m.boxes[r]
	if b == nil || b.held == 0 {
		return nil
	}
	var muts []mutation
	for _, it := range b.items {
		if it.held != nil {
			_, pm := m.persist(r, it.seq)
			muts = append(muts, pm...)
		}
	}
	return muts
}

// backlog returns how many of r's waiting items are in the
// datastore, and how many are held in memory.
func (m *mailboxes) backlog(r peer.ID) (stored, held int) {
	b := m.boxes[r]
	if b == nil {
		return 0, 0
	}
	return len(b.items) - b.held, b.held
}

func (r idRecord) marshal() []byte {
	m := &pb.ItemRecord{Seq: r.seq, State: r.state, ExpiresAt: r.expires, Kind: int32(r.kind), From: []byte(r.from)}
	for _, d := range r.deps {
		m.Deps = append(m.Deps, d[:])
	}
	return mustMarshal(m)
}

func mustMarshal(m proto.Message) []byte {
	b, err := proto.Marshal(m)
	if err != nil {
		panic("rendezvous: marshal: " + err.Error()) // only our own well-formed records
	}
	return b
}

// isHeld reports whether seq waits in memory only.
func (b *box) isHeld(seq uint64) bool {
	i := b.find(seq)
	return i >= 0 && b.items[i].held != nil
}

func (b *box) find(seq uint64) int {
	i := sort.Search(len(b.items), func(i int) bool { return b.items[i].seq >= seq })
	if i < len(b.items) && b.items[i].seq == seq {
		return i
	}
	return -1
}

// cut removes items[i] by moving the shorter side over it. Nodes
// acknowledge the oldest items first, so a drain removes at the front, and
// moving everything after it each time made draining a full mailbox
// quadratic (12,000 items: 72 million moves).
func (b *box) cut(i int) {
	n := len(b.items)
	if i < n/2 {
		copy(b.items[1:i+1], b.items[:i])
		b.items[0] = mailItem{} // let go of what it references
		b.items = b.items[1:]
		return
	}
	copy(b.items[i:], b.items[i+1:])
	b.items[n-1] = mailItem{}
	b.items = b.items[:n-1]
}

// removeAt settles items[i] of r's box as state (ACKED or WITHDRAWN). An
// item that rests on attestations is listed on disk under its sender,
// where a revocation after its delivery finds it (see storedDep), from
// when its record is first written: when it is stored (put, persist) or,
// for an item held in memory, when it is acknowledged.
func (m *mailboxes) removeAt(r peer.ID, b *box, i int, state pb.ItemState, now time.Time) []mutation {
	it := b.items[i]
	b.cut(i)
	m.count(b, it, -1)
	rec := b.ids[it.id]
	rec.state = state
	b.ids[it.id] = rec
	m.unindex(r, it.id, it.deps)
	m.settle(r, it.id, now)
	var muts []mutation
	if it.held != nil {
		// Never written: its id record (and the box's next seq) is all
		// the datastore needs.
		b.held--
		muts = append(muts, mutation{key: mboxIDKey(r, it.id), value: rec.marshal()}, b.metaMutation(r))
	} else {
		muts = append(muts,
			mutation{key: mboxKey(r, it.seq), del: true},
			mutation{key: mboxIDKey(r, it.id), value: rec.marshal()})
	}
	if it.held != nil && state == pb.ItemState_ACKED {
		muts = append(muts, indexEntries(r, it.id, rec)...)
	}
	return muts
}

// indexEntries returns the index entries that let a revocation find r's
// item id once it is delivered: one under its sender, or, for a record
// that does not name its sender (written before layout 2), one under each
// attestation; none for an item that rests on none.
func indexEntries(r peer.ID, id string, rec idRecord) []mutation {
	if len(rec.deps) == 0 {
		return nil
	}
	exp := expiryValue(rec.expires)
	if rec.from != "" {
		return []mutation{{key: mboxFromKey(rec.from, r, id), value: exp}}
	}
	muts := make([]mutation, 0, len(rec.deps))
	for _, d := range rec.deps {
		muts = append(muts, mutation{key: mboxDepKey(d, r, id), value: exp})
	}
	return muts
}

// unindex drops r's item id from the in-memory index of pending items'
// dependencies.
func (m *mailboxes) unindex(r peer.ID, id string, deps []identity.AttestationID) {
	for _, d := range deps {
		if refs := m.deps[d]; refs != nil {
			refs.remove(depRef{r, id})
			if refs.len() == 0 {
				delete(m.deps, d)
			}
		}
	}
}

// settle notes that r's record of id was settled now, so that forget
// drops it from memory later, and forgets what is already old.
func (m *mailboxes) settle(r peer.ID, id string, now time.Time) {
	m.recent = append(m.recent, settledRef{recipient: r, id: id, at: now.UnixNano()})
	m.forget(now)
}

// forget drops from memory the settled id records settled more than
// recentTTL before now; their records stay on disk. A record pending
// again (its id put anew after it expired) stays.
func (m *mailboxes) forget(now time.Time) {
	cut := now.Add(-m.recentTTL).UnixNano()
	n := 0
	var shrink []*box
	for ; n < len(m.recent) && m.recent[n].at < cut; n++ {
		ref := m.recent[n]
		b := m.boxes[ref.recipient]
		if b == nil {
			continue
		}
		if rec, ok := b.ids[ref.id]; ok && rec.state != pb.ItemState_PENDING {
			delete(b.ids, ref.id)
			if b.idsPeak >= 256 && len(b.ids) < b.idsPeak/4 {
				shrink = append(shrink, b)
			}
		}
	}
	if n == 0 {
		return
	}
	clear(m.recent[:n]) // let go of the ids
	m.recent = m.recent[n:]
	for _, b := range shrink {
		if b.idsPeak >= 256 && len(b.ids) < b.idsPeak/4 {
			b.ids = maps.Clone(b.ids)
			if b.ids == nil {
				b.ids = map[string]idRecord{}
			}
			b.idsPeak = len(b.ids)
		}
	}
}

// knows reports whether the model holds r's record of id.
func (m *mailboxes) knows(r peer.ID, id string) bool {
	b := m.boxes[r]
	if b == nil {
		return false
	}
	_, ok := b.ids[id]
	return ok
}

// recall puts back in memory, for recentTTL, a settled record of r's that
// the store read from disk, so that put and state see it. A pending record
// is never only on disk; one that says so is ignored.
func (m *mailboxes) recall(r peer.ID, id string, rec idRecord, now time.Time) {
	if rec.state == pb.ItemState_PENDING || m.knows(r, id) {
		return
	}
	b := m.box(r)
	b.ids[id] = rec
	b.idsPeak = max(b.idsPeak, len(b.ids))
	m.settle(r, id, now)
}

// ack removes the acknowledged items of r's mailbox. Unknown or already
// acknowledged seqs are ignored: acks are idempotent.
func (m *mailboxes) ack(r peer.ID, seqs []uint64, now time.Time) (acked []uint64, muts []mutation) {
	b := m.boxes[r]
	if b == nil {
		return nil, nil
	}
	for _, seq := range seqs {
		i := b.find(seq)
		if i < 0 {
			continue
		}
		muts = append(muts, m.removeAt(r, b, i, pb.ItemState_ACKED, now)...)
		acked = append(acked, seq)
	}
	return acked, muts
}

// pendingRef is a seq waiting in a mailbox, with its InboxItem if the
// item is held in memory.
type pendingRef struct {
	seq  uint64
	item []byte
}

// pendingRefs is pending with the InboxItems of held items.
func (m *mailboxes) pendingRefs(r peer.ID, after uint64, n int) []pendingRef {
	b := m.boxes[r]
	if b == nil {
		return nil
	}
	i := sort.Search(len(b.items), func(i int) bool { return b.items[i].seq > after })
	var out []pendingRef
	for ; i < len(b.items) && len(out) < n; i++ {
		ref := pendingRef{seq: b.items[i].seq}
		if h := b.items[i].held; h != nil {
			ref.item = h.stored.Item
		}
		out = append(out, ref)
	}
	return out
}

// depth returns the number of items waiting for r.
func (m *mailboxes) depth(r peer.ID) int {
	if b := m.boxes[r]; b != nil {
		return len(b.items)
	}
	return 0
}

// state returns what the mailbox of r knows of item id.
func (m *mailboxes) state(r peer.ID, id string) (idRecord, bool) {
	if b := m.boxes[r]; b != nil {
		rec, ok := b.ids[id]
		return rec, ok
	}
	return idRecord{}, false
}

// withdrawalID names the notice that withdraws item id: stable, so a
// revocation heard twice (from a node and from gossip) notifies once.
func withdrawalID(id string, att identity.AttestationID) string {
	h := sha256.New()
	h.Write([]byte("kith/withdrawal/v1"))
	h.Write([]byte(id))
	h.Write(att[:])
	return string(h.Sum(nil)[:16])
}

// storedDep is a delivered item that may rest on a revoked attestation,
// as the datastore knows it: the store lists the items to or from either
// friend of the attestation (every attestation an item rests on is its
// sender's or its recipient's) and those indexed under the attestation
// itself, with their id records as last written, before it calls
// withdraw.
type storedDep struct {
	keys      []ds.Key // its index entries (under its sender or the attestation)
	recipient peer.ID
	id        string
	rec       idRecord
	found     bool // the id record exists
}

// withdraw applies a revocation to the items resting on its attestation:
// an item still waiting is deleted unseen; one already delivered (among
// stored, from the datastore) gets a withdrawal notice queued behind it.
// It returns the recipients whose mailboxes changed.
func (m *mailboxes) withdraw(rev *identity.Revocation, now time.Time, stored []storedDep) (touched []peer.ID, muts []mutation) {
	att := rev.AttestationID
	// Visit in a fixed order so the same revocation gives the same seqs.
	var ordered []depRef
	if refs := m.deps[att]; refs != nil {
		ordered = make([]depRef, 0, refs.len())
		refs.each(func(r depRef, _ int64) { ordered = append(ordered, r) })
	}
	sort.Slice(ordered, func(i, j int) bool {
		if ordered[i].recipient != ordered[j].recipient {
			return ordered[i].recipient < ordered[j].recipient
		}
		return ordered[i].id < ordered[j].id
	})
	for _, ref := range ordered {
		b := m.boxes[ref.recipient]
		if b == nil {
			continue
		}
		rec, ok := b.ids[ref.id]
		if !ok || rec.state != pb.ItemState_PENDING {
			continue
		}
		if i := b.find(rec.seq); i >= 0 {
			muts = append(muts, m.removeAt(ref.recipient, b, i, pb.ItemState_WITHDRAWN, now)...)
			touched = append(touched, ref.recipient)
		}
	}
	delete(m.deps, att)
	attPrefix := mboxDepPrefix(att)
	for _, d := range stored {
		rec, found := d.rec, d.found
		if b := m.boxes[d.recipient]; b != nil {
			if mem, ok := b.ids[d.id]; ok {
				rec, found = mem, true // newer than the disk's, if it differs
			}
		}
		if found && rec.state == pb.ItemState_PENDING {
			continue // still waiting: withdrawn above if it rests on att; its entry stays for later
		}
		live := found && rec.state == pb.ItemState_ACKED && now.Unix() < rec.expires
		if !live || !slices.Contains(rec.deps, att) {
			// An entry under this attestation has done its work; one
			// under the sender stays while the item may rest on others.
			for _, k := range d.keys {
				if !live || strings.HasPrefix(k.String(), attPrefix) {
					muts = append(muts, mutation{key: k, del: true})
				}
			}
			continue
		}
		payload := mustMarshal(&protopb.Withdrawal{ItemId: []byte(d.id), ItemKind: rec.kind, Revocation: rev.Raw})
		res, pm := m.put(newItem{
			recipient: d.recipient, id: withdrawalID(d.id, att),
			kind: protopb.ItemKind_WITHDRAWAL, payload: payload, from: rev.Revoker,
		}, now)
		if res.outcome == putStored {
			muts = append(muts, pm...)
			touched = append(touched, d.recipient)
		}
		rec.state = pb.ItemState_WITHDRAWN
		if b := m.boxes[d.recipient]; b != nil {
			if _, ok := b.ids[d.id]; ok {
				b.ids[d.id] = rec
			}
		}
		muts = append(muts, mutation{key: mboxIDKey(d.recipient, d.id), value: rec.marshal()})
		for _, k := range d.keys {
			muts = append(muts, mutation{key: k, del: true})
		}
	}
	return touched, muts
}

// expiryValue is the value of a dependency index entry: when it expires.
func expiryValue(unix int64) []byte {
	return binary.BigEndian.AppendUint64(nil, uint64(unix))
}

// parseExpiryValue reads expiryValue; anything else reads as long expired.
func parseExpiryValue(v []byte) int64 {
	if len(v) != 8 {
		return 0
	}
	return int64(binary.BigEndian.Uint64(v))
}

// expire drops items, id records and dependencies past their expiry.
func (m *mailboxes) expire(now time.Time) (dropped int, muts []mutation) {
	t := now.Unix()
	for r, b := range m.boxes {
		kept := b.items[:0]
		for _, it := range b.items {
			if t < it.expires {
				kept = append(kept, it)
				continue
			}
			m.count(b, it, -1)
			dropped++
			if it.held != nil {
				b.held--
				continue
			}
			muts = append(muts, mutation{key: mboxKey(r, it.seq), del: true})
		}
		b.items = kept
		for id, rec := range b.ids {
			if t >= rec.expires {
				delete(b.ids, id)
				muts = append(muts, mutation{key: mboxIDKey(r, id), del: true})
			}
		}
	}
	for att, refs := range m.deps {
		refs.each(func(r depRef, exp int64) {
			if t >= exp {
				refs.remove(r) // it lived in the id record, deleted above
			}
		})
		if refs.len() == 0 {
			delete(m.deps, att)
		}
	}
	m.forget(now)
	return dropped, muts
}

// The load functions rebuild the model from the datastore at start.

func (m *mailboxes) loadMeta(r peer.ID, meta *pb.BoxMeta) {
	b := m.box(r)
	if meta.NextSeq > b.nextSeq {
		b.nextSeq = meta.NextSeq
	}
}

// loadItem loads a pending item, with its id record and its place in the
// index of pending items' dependencies (what put made of it); kind and from
// are read from its InboxItem. Settled records stay on disk: the store
// recalls one when it is needed (see recall).
func (m *mailboxes) loadItem(r peer.ID, seq uint64, size int, st *pb.StoredItem, kind protopb.ItemKind, from peer.ID) {
	b := m.box(r)
	it := mailItem{seq: seq, id: string(st.Id), size: size, expires: st.ExpiresAt, stranger: isStranger(kind)}
	for _, d := range st.Deps {
		var a identity.AttestationID
		copy(a[:], d)
		it.deps = append(it.deps, a)
	}
	b.items = append(b.items, it)
	m.count(b, it, 1)
	if seq >= b.nextSeq {
		b.nextSeq = seq + 1
	}
	b.ids[it.id] = idRecord{seq: seq, state: pb.ItemState_PENDING, kind: kind, expires: it.expires, deps: it.deps, from: from}
	b.idsPeak = max(b.idsPeak, len(b.ids))
	for _, a := range it.deps {
		if m.revoked(a) {
			continue // withdrawn already, when the revocation came
		}
		m.index(a, r, it.id, it.expires)
	}
}

// idRecordOf decodes a stored id record.
func idRecordOf(rec *pb.ItemRecord) idRecord {
	ir := idRecord{seq: rec.Seq, state: rec.State, kind: protopb.ItemKind(rec.Kind), expires: rec.ExpiresAt}
	if from, err := peer.IDFromBytes(rec.From); err == nil {
		ir.from = from
	}
	for _, d := range rec.Deps {
		var a identity.AttestationID
		copy(a[:], d)
		ir.deps = append(ir.deps, a)
	}
	return ir
}

func (m *mailboxes) finishLoad() {
	for _, b := range m.boxes {
		sort.Slice(b.items, func(i, j int) bool { return b.items[i].seq < b.items[j].seq })
	}
}
