package rendezvous

import (
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
	"sync"

	ds "github.com/ipfs/go-datastore"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/kithnet/kith/identity"
)

// Datastore key layout. Peer ids are in their base58 text form, ids and
// hashes in hex, sequence numbers zero-padded so that key order is mailbox
// order.
//
//	/kith/mbox/<recipient>/<seq>            StoredItem
//	/kith/mboxid/<recipient>/<item id>      ItemRecord (idempotency)
//	/kith/mboxmeta/<recipient>              BoxMeta
//	/kith/mboxfrom/<sender>/<recipient>/<item id>
//	                                        expiry (8 bytes, Unix seconds): a
//	                                        delivered item that rests on
//	                                        attestations (see storedDep)
//	/kith/mboxdep/<attestation>/<recipient>/<item id>
//	                                        the same, for an item whose record
//	                                        does not name its sender
//	/kith/withdrawing/<attestation id>      identity revocation bytes: its
//	                                        delivered items are still being
//	                                        withdrawn (resumed at start)
//	/kith/layout                            layoutVersion
//	/kith/shares/<share id>                 ShareRecord
//	/kith/revoked/<attestation id>          identity revocation bytes
//	/kith/profiles/<peer>                   identity signed profile bytes
const (
	prefixMbox     = "/kith/mbox/"
	prefixMboxID   = "/kith/mboxid/"
	prefixMboxMeta = "/kith/mboxmeta/"
	prefixMboxDep  = "/kith/mboxdep/"
	prefixMboxFrom = "/kith/mboxfrom/"
	prefixWithdraw = "/kith/withdrawing/"
	prefixShares   = "/kith/shares/"
	prefixRevoked  = "/kith/revoked/"
	prefixProfiles = "/kith/profiles/"
)

func mboxKey(r peer.ID, seq uint64) ds.Key {
	return ds.RawKey(fmt.Sprintf("%s%s/%020d", prefixMbox, peerText(r), seq))
}

func mboxIDKey(r peer.ID, id string) ds.Key {
	return ds.RawKey(prefixMboxID + peerText(r) + "/" + hex.EncodeToString([]byte(id)))
}

func mboxMetaKey(r peer.ID) ds.Key { return ds.RawKey(prefixMboxMeta + peerText(r)) }

// mboxDepPrefix is where the delivered items resting on att are listed.
func mboxDepPrefix(att identity.AttestationID) string {
	return prefixMboxDep + att.String() + "/"
}

func mboxDepKey(att identity.AttestationID, r peer.ID, id string) ds.Key {
	return ds.RawKey(mboxDepPrefix(att) + peerText(r) + "/" + hex.EncodeToString([]byte(id)))
}

// mboxFromPrefix is where the delivered items from sender are listed.
func mboxFromPrefix(sender peer.ID) string { return prefixMboxFrom + peerText(sender) + "/" }

func mboxFromKey(sender, r peer.ID, id string) ds.Key {
	return ds.RawKey(mboxFromPrefix(sender) + peerText(r) + "/" + hex.EncodeToString([]byte(id)))
}

// layoutKey holds the version of the key layout the datastore is in.
var layoutKey = ds.RawKey("/kith/layout")

// layoutVersion 2 added the indexes of delivered items (/kith/mboxfrom/,
// /kith/mboxdep/) and the sender in id records: before it, the relay kept
// every delivered item's id record and dependencies in memory until they
// expired (30 days by default). Opening an older datastore indexes its
// delivered items under their attestations, since their records do not
// name their senders.
const layoutVersion = "2"

// peerTexts caches the base58 form of recently seen peer ids: every share
// builds three mailbox keys from its recipient, and base58 encoding was 2%
// of the relay's CPU under load. It is emptied when full.
var peerTexts struct {
	sync.Mutex
	m map[peer.ID]string
}

const peerTextsMax = 1 << 16

// peerText returns r.String(), from the cache when it can.
func peerText(r peer.ID) string {
	peerTexts.Lock()
	defer peerTexts.Unlock()
	if s, ok := peerTexts.m[r]; ok {
		return s
	}
	if peerTexts.m == nil || len(peerTexts.m) >= peerTextsMax {
		peerTexts.m = make(map[peer.ID]string)
	}
	s := r.String()
	peerTexts.m[r] = s
	return s
}

func shareKey(id identity.ShareID) ds.Key { return ds.RawKey(prefixShares + id.String()) }

func revokedKey(id identity.AttestationID) ds.Key { return ds.RawKey(prefixRevoked + id.String()) }

func withdrawingKey(id identity.AttestationID) ds.Key {
	return ds.RawKey(prefixWithdraw + id.String())
}

func profileKey(p peer.ID) ds.Key { return ds.RawKey(prefixProfiles + p.String()) }

// splitKey returns the path components of k after prefix.
func splitKey(k, prefix string) []string {
	return strings.Split(strings.TrimPrefix(k, prefix), "/")
}

func parsePeerText(s string) (peer.ID, error) { return peer.Decode(s) }

func parseHexID(s string) (string, error) {
	b, err := hex.DecodeString(s)
	return string(b), err
}

func parseSeq(s string) (uint64, error) { return strconv.ParseUint(s, 10, 64) }
