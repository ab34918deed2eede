package rendezvous

import (
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"

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
//	/kith/shares/<share id>                 ShareRecord
//	/kith/revoked/<attestation id>          identity revocation bytes
//	/kith/profiles/<peer>                   identity signed profile bytes
const (
	prefixMbox     = "/kith/mbox/"
	prefixMboxID   = "/kith/mboxid/"
	prefixMboxMeta = "/kith/mboxmeta/"
	prefixShares   = "/kith/shares/"
	prefixRevoked  = "/kith/revoked/"
	prefixProfiles = "/kith/profiles/"
)

func mboxKey(r peer.ID, seq uint64) ds.Key {
	return ds.RawKey(fmt.Sprintf("%s%s/%020d", prefixMbox, r, seq))
}

func mboxIDKey(r peer.ID, id string) ds.Key {
	return ds.RawKey(prefixMboxID + r.String() + "/" + hex.EncodeToString([]byte(id)))
}

func mboxMetaKey(r peer.ID) ds.Key { return ds.RawKey(prefixMboxMeta + r.String()) }

func shareKey(id identity.ShareID) ds.Key { return ds.RawKey(prefixShares + id.String()) }

func revokedKey(id identity.AttestationID) ds.Key { return ds.RawKey(prefixRevoked + id.String()) }

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
