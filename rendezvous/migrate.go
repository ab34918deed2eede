package rendezvous

import (
	"fmt"

	"github.com/libp2p/go-libp2p/core/peer"
	"google.golang.org/protobuf/proto"

	"github.com/kithnet/kith/rendezvous/pb"
)

// migration brings a datastore written before layout 2 to it, during a
// start. Layout 1 kept delivered items' dependencies only in their id
// records, and listed a stored item under its sender only once it was
// acknowledged; layout 2 lists every stored item under its sender from
// when it is stored, and a revocation finds delivered items through that
// index. So: every pending item gets its index entries, every delivered
// and unexpired one an entry under each attestation it rests on, and the
// layout key is written last, in the same synced batch.
type migration struct {
	l    *loader
	muts []mutation
}

// pendingItem indexes a pending item just loaded.
func (m *migration) pendingItem(r peer.ID, id string) {
	rec, _ := m.l.mb.state(r, id)
	m.muts = append(m.muts, indexEntries(r, id, rec)...)
}

// idRecord indexes a delivered item from its id record.
func (m *migration) idRecord(k []string, v []byte) error {
	if len(k) != 2 {
		return fmt.Errorf("bad key")
	}
	r, err := parsePeerText(k[0])
	if err != nil {
		return err
	}
	id, err := parseHexID(k[1])
	if err != nil {
		return err
	}
	var rec pb.ItemRecord
	if err := proto.Unmarshal(v, &rec); err != nil {
		return err
	}
	if rec.State == pb.ItemState_ACKED && m.l.now.Unix() < rec.ExpiresAt {
		for _, a := range idRecordOf(&rec).deps {
			if !m.l.s.revoked.Revoked(a) {
				m.muts = append(m.muts, mutation{key: mboxDepKey(a, r, id), value: expiryValue(rec.ExpiresAt)})
			}
		}
	}
	return nil
}

// finish writes the index entries and the layout, synced.
func (m *migration) finish() error {
	muts := append(m.muts, mutation{key: layoutKey, value: []byte(layoutVersion)})
	if err := m.l.s.write(muts, true); err != nil {
		return fmt.Errorf("rendezvous: index delivered items: %w", err)
	}
	if len(m.muts) > 0 {
		m.l.s.log.Info("indexed delivered items by attestation", "entries", len(m.muts))
	}
	return nil
}
