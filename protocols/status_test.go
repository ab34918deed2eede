package protocols

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/kithnet/kith/identity"
	"github.com/kithnet/kith/protocols/pb"
)

func TestStatusRoundTrip(t *testing.T) {
	for s, sentinel := range statusErrs {
		// Go error -> wire status -> Go error keeps the status and the text.
		sent := Errorf(s, "because %d", s)
		if got := StatusOf(fmt.Errorf("wrapped: %w", sent)); got != s {
			t.Errorf("StatusOf(%v) = %v", sent, got)
		}
		back := ResponseError(StatusOf(sent), sent.Text, nil)
		if !errors.Is(back, sentinel) {
			t.Errorf("ResponseError(%v) = %v, not %v", s, back, sentinel)
		}
		if !strings.Contains(back.Error(), sent.Text) {
			t.Errorf("text lost: %q", back.Error())
		}
		// A bare sentinel maps to its status too.
		if got := StatusOf(sentinel); got != s {
			t.Errorf("StatusOf(%v) = %v, want %v", sentinel, got, s)
		}
	}
	if ResponseError(pb.Status_OK, "", nil) != nil || StatusOf(nil) != pb.Status_OK {
		t.Fatal("OK is not nil")
	}
	for _, s := range []pb.Status{pb.Status_STATUS_UNSPECIFIED, 999} {
		if err := ResponseError(s, "", nil); !errors.Is(err, ErrBadResponse) {
			t.Fatalf("status %d: %v, want ErrBadResponse", s, err)
		}
	}
	mapped := []struct {
		err  error
		want pb.Status
	}{
		{ErrFrameTooLarge, pb.Status_TOO_LARGE},
		{ErrTruncated, pb.Status_BAD_REQUEST},
		{ErrUndecodable, pb.Status_BAD_REQUEST},
		{&identity.VerifyError{Reason: identity.ReasonExpired}, pb.Status_REFUSED},
		{errors.New("disk on fire"), pb.Status_INTERNAL},
	}
	for _, m := range mapped {
		if got := StatusOf(m.err); got != m.want {
			t.Errorf("StatusOf(%v) = %v, want %v", m.err, got, m.want)
		}
	}
}

func TestReasonMapping(t *testing.T) {
	for _, r := range identity.Reasons() {
		w := WireReason(r)
		if w == pb.Reason_REASON_UNSPECIFIED {
			t.Fatalf("identity reason %v has no wire value", r)
		}
		if back := IdentityReason(w); back != r {
			t.Fatalf("%v -> %v -> %v", r, w, back)
		}
		if ReasonText(w) == "" || strings.HasPrefix(ReasonText(w), "reason ") {
			t.Fatalf("wire reason %v has no text", w)
		}
	}
	for w := range pb.Reason_name {
		if ReasonText(pb.Reason(w)) == "" {
			t.Fatalf("reason %d has no text", w)
		}
	}
}

func TestFailureMessageNamesThePeer(t *testing.T) {
	w := newWorld(t)
	_, err := identity.NewVerifier().Friendship(nil, w.alice.id, w.mallory.id, t0)
	f := NewFailure(w.mallory.id, pb.Role_ITEM, err)
	e := &StatusError{Status: pb.Status_REFUSED, Text: "the share was not sent", Failures: []Failure{f}}
	msg := e.Error()
	for _, want := range []string{"refused", "the share was not sent", identity.ShortID(w.mallory.id), "shared friend", "no valid attestation"} {
		if !strings.Contains(msg, want) {
			t.Errorf("%q does not say %q", msg, want)
		}
	}
	f.Profile = []byte("a newer profile")
	if got := FailureFromWire(f.ToWire()); !reflect.DeepEqual(got, f) {
		t.Fatalf("failure round trip: %+v != %+v", got, f)
	}
}
