package rendezvous

import (
	"crypto/sha256"
	"sort"
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
// datastore), the item ids each recipient has seen, and which items rest on
// which attestations. Each operation takes `now`, updates the model and
// returns the datastore mutations that make the change durable; the store
// writes them in one batch. Nothing here does I/O.

// Quota bounds one recipient's mailbox.
type Quota struct {
	Items int   // pending items
	Bytes int64 // stored bytes of pending items
}

// mutation is one datastore write the model asks for.
type mutation struct {
	key   ds.Key
	value []byte
	del   bool
}

// Expiry times are Unix seconds, as stored.

type mailItem struct {
	seq     uint64
	id      string
	size    int
	expires int64
	deps    []identity.AttestationID
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
}

type box struct {
	nextSeq uint64     // the next seq to assign; seqs start at 1
	items   []mailItem // pending, by ascending seq
	bytes   int64
	held    int // items[i].held != nil
	ids     map[string]idRecord
}

type depRef struct {
	recipient peer.ID
	id        string
}

// mailboxes is the model of every mailbox of one relay. It is not safe for
// concurrent use; the store serialises access.
type mailboxes struct {
	boxes   map[peer.ID]*box
	deps    map[identity.AttestationID]map[depRef]int64
	quota   Quota
	ttl     time.Duration
	revoked func(identity.AttestationID) bool
	total   int // pending items in all mailboxes
}

func newMailboxes(q Quota, ttl time.Duration, revoked func(identity.AttestationID) bool) *mailboxes {
	if revoked == nil {
		revoked = func(identity.AttestationID) bool { return false }
	}
	return &mailboxes{
		boxes: map[peer.ID]*box{}, deps: map[identity.AttestationID]map[depRef]int64{},
		quota: q, ttl: ttl, revoked: revoked,
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
	outcome putOutcome
	seq     uint64
	held    bool // stored in memory only, for now
}

// put stores it unless its id was seen, it rests on a revoked attestation,
// or the mailbox is full.
func (m *mailboxes) put(it newItem, now time.Time) (putResult, []mutation) {
	b := m.box(it.recipient)
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
	if len(b.items) >= m.quota.Items || b.bytes+int64(size) > m.quota.Bytes {
		return putResult{outcome: putOverQuota}, nil
	}
	b.nextSeq++
	rec := idRecord{seq: seq, state: pb.ItemState_PENDING, kind: it.kind, expires: expires, deps: it.deps}
	mi := mailItem{seq: seq, id: it.id, size: size, expires: expires, deps: it.deps}
	var muts []mutation
	if it.hold {
		mi.held = &heldItem{stored: stored}
		b.held++
	} else {
		muts = []mutation{
			{key: mboxKey(it.recipient, seq), value: storedBytes},
			{key: mboxIDKey(it.recipient, it.id), value: rec.marshal()},
			b.metaMutation(it.recipient),
		}
	}
	b.items = append(b.items, mi)
	b.bytes += int64(size)
	b.ids[it.id] = rec
	m.total++
	for _, d := range it.deps {
		refs := m.deps[d]
		if refs == nil {
			refs = map[depRef]int64{}
			m.deps[d] = refs
		}
		refs[depRef{it.recipient, it.id}] = expires
	}
	return putResult{outcome: putStored, seq: seq, held: it.hold}, muts
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
	return true, []mutation{
		{key: mboxKey(r, seq), value: mustMarshal(h.stored)},
		{key: mboxIDKey(r, it.id), value: b.ids[it.id].marshal()},
		b.metaMutation(r),
	}
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
	m := &pb.ItemRecord{Seq: r.seq, State: r.state, ExpiresAt: r.expires, Kind: int32(r.kind)}
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

func (m *mailboxes) removeAt(r peer.ID, b *box, i int, state pb.ItemState) []mutation {
	it := b.items[i]
	b.cut(i)
	b.bytes -= int64(it.size)
	m.total--
	rec := b.ids[it.id]
	rec.state = state
	b.ids[it.id] = rec
	if it.held != nil {
		// Never written: its id record (and the box's next seq) is all
		// the datastore needs.
		b.held--
		return []mutation{
			{key: mboxIDKey(r, it.id), value: rec.marshal()},
			b.metaMutation(r),
		}
	}
	return []mutation{
		{key: mboxKey(r, it.seq), del: true},
		{key: mboxIDKey(r, it.id), value: rec.marshal()},
	}
}

// ack removes the acknowledged items of r's mailbox. Unknown or already
// acknowledged seqs are ignored: acks are idempotent.
func (m *mailboxes) ack(r peer.ID, seqs []uint64) (acked []uint64, muts []mutation) {
	b := m.boxes[r]
	if b == nil {
		return nil, nil
	}
	for _, seq := range seqs {
		i := b.find(seq)
		if i < 0 {
			continue
		}
		muts = append(muts, m.removeAt(r, b, i, pb.ItemState_ACKED)...)
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

// withdraw applies a revocation to the items resting on its attestation:
// an item still waiting is deleted unseen; one already delivered gets a
// withdrawal notice queued behind it. It returns the recipients whose
// mailboxes changed.
func (m *mailboxes) withdraw(rev *identity.Revocation, now time.Time) (touched []peer.ID, muts []mutation) {
	refs := m.deps[rev.AttestationID]
	// Visit in a fixed order so the same revocation gives the same seqs.
	ordered := make([]depRef, 0, len(refs))
	for ref := range refs {
		ordered = append(ordered, ref)
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
		if !ok {
			continue
		}
		switch rec.state {
		case pb.ItemState_PENDING:
			if i := b.find(rec.seq); i >= 0 {
				muts = append(muts, m.removeAt(ref.recipient, b, i, pb.ItemState_WITHDRAWN)...)
				touched = append(touched, ref.recipient)
			}
		case pb.ItemState_ACKED:
			payload := mustMarshal(&protopb.Withdrawal{ItemId: []byte(ref.id), ItemKind: rec.kind, Revocation: rev.Raw})
			res, pm := m.put(newItem{
				recipient: ref.recipient, id: withdrawalID(ref.id, rev.AttestationID),
				kind: protopb.ItemKind_WITHDRAWAL, payload: payload, from: rev.Revoker,
			}, now)
			if res.outcome == putStored {
				muts = append(muts, pm...)
				touched = append(touched, ref.recipient)
			}
			rec.state = pb.ItemState_WITHDRAWN
			b.ids[ref.id] = rec
			muts = append(muts, mutation{key: mboxIDKey(ref.recipient, ref.id), value: rec.marshal()})
		}
	}
	delete(m.deps, rev.AttestationID)
	return touched, muts
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
			b.bytes -= int64(it.size)
			m.total--
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
		for ref, exp := range refs {
			if t >= exp {
				delete(refs, ref) // it lived in the id record, deleted above
			}
		}
		if len(refs) == 0 {
			delete(m.deps, att)
		}
	}
	return dropped, muts
}

// The load functions rebuild the model from the datastore at start.

func (m *mailboxes) loadMeta(r peer.ID, meta *pb.BoxMeta) {
	b := m.box(r)
	if meta.NextSeq > b.nextSeq {
		b.nextSeq = meta.NextSeq
	}
}

func (m *mailboxes) loadItem(r peer.ID, seq uint64, size int, st *pb.StoredItem) {
	b := m.box(r)
	it := mailItem{seq: seq, id: string(st.Id), size: size, expires: st.ExpiresAt}
	for _, d := range st.Deps {
		var a identity.AttestationID
		copy(a[:], d)
		it.deps = append(it.deps, a)
	}
	b.items = append(b.items, it)
	b.bytes += int64(size)
	if seq >= b.nextSeq {
		b.nextSeq = seq + 1
	}
	m.total++
}

func (m *mailboxes) loadID(r peer.ID, id string, rec *pb.ItemRecord) {
	ir := idRecord{seq: rec.Seq, state: rec.State, kind: protopb.ItemKind(rec.Kind), expires: rec.ExpiresAt}
	for _, d := range rec.Deps {
		var a identity.AttestationID
		copy(a[:], d)
		ir.deps = append(ir.deps, a)
		if m.revoked(a) {
			continue // withdrawn already, when the revocation came
		}
		refs := m.deps[a]
		if refs == nil {
			refs = map[depRef]int64{}
			m.deps[a] = refs
		}
		refs[depRef{r, id}] = rec.ExpiresAt
	}
	m.box(r).ids[id] = ir
}

func (m *mailboxes) finishLoad() {
	for _, b := range m.boxes {
		sort.Slice(b.items, func(i, j int) bool { return b.items[i].seq < b.items[j].seq })
	}
}
