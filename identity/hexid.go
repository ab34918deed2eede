package identity

import (
	"encoding/hex"
	"fmt"
)

// DecodeHexID decodes s, the hex form of an id of exactly len(id) bytes,
// into id; what names the kind of id in the error ("a share id"). id is
// left unchanged on error. The id types of Kith (AttestationID, ShareID,
// protocols.RequestID) parse and unmarshal through it.
func DecodeHexID(id []byte, s, what string) error {
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != len(id) {
		return fmt.Errorf("%q is not %s (%d hex digits)", s, what, 2*len(id))
	}
	copy(id, b)
	return nil
}
