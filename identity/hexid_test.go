package identity

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestHexIDs(t *testing.T) {
	share := NewShareID()
	cases := []struct {
		name string
		in   string
		ok   bool
	}{
		{"round trip", share.String(), true},
		{"upper case", strings.ToUpper(share.String()), true},
		{"empty", "", false},
		{"short", share.String()[:30], false},
		{"long", share.String() + "00", false},
		{"odd length", share.String()[:31], false},
		{"not hex", strings.Repeat("zz", 16), false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := ParseShareID(c.in)
			if (err == nil) != c.ok {
				t.Fatalf("ParseShareID(%q) = %v", c.in, err)
			}
			if c.ok && got != share {
				t.Fatalf("parsed %s, want %s", got, share)
			}
			if !c.ok && !strings.Contains(err.Error(), "is not a share id") {
				t.Fatalf("error %q does not say what was expected", err)
			}
		})
	}
	// Unmarshalling a bad id leaves the old value.
	id := share
	if err := json.Unmarshal([]byte(`"nothex"`), &id); err == nil || id != share {
		t.Fatalf("bad JSON id: err %v, id changed to %s", err, id)
	}
	var att AttestationID
	if err := att.UnmarshalText([]byte(share.String())); err == nil {
		t.Fatal("a 16-byte id was taken as a 32-byte attestation id")
	}
}
