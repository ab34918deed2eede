package protocols

import (
	"errors"
	"fmt"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/kithnet/kith/identity"
	"github.com/kithnet/kith/protocols/pb"
)

// Sentinel errors, one per failing status: errors.Is(err, ErrRefused) holds
// for a *StatusError whose Status is pb.Status_REFUSED.
var (
	ErrBadRequest    = errors.New("bad request")
	ErrTooLarge      = errors.New("too large")
	ErrUnauthorized  = errors.New("unauthorized")
	ErrRefused       = errors.New("refused")
	ErrReplay        = errors.New("replayed")
	ErrQuotaExceeded = errors.New("mailbox full")
	ErrRateLimited   = errors.New("rate limited")
	ErrNotFound      = errors.New("not found")
	ErrUnavailable   = errors.New("unavailable")
	ErrInternal      = errors.New("internal error")
	// ErrBadResponse is returned for a response whose status is missing or
	// unknown: the peer does not speak the protocol correctly.
	ErrBadResponse = errors.New("malformed response")
)

var statusErrs = map[pb.Status]error{
	pb.Status_BAD_REQUEST:    ErrBadRequest,
	pb.Status_TOO_LARGE:      ErrTooLarge,
	pb.Status_UNAUTHORIZED:   ErrUnauthorized,
	pb.Status_REFUSED:        ErrRefused,
	pb.Status_REPLAY:         ErrReplay,
	pb.Status_QUOTA_EXCEEDED: ErrQuotaExceeded,
	pb.Status_RATE_LIMITED:   ErrRateLimited,
	pb.Status_NOT_FOUND:      ErrNotFound,
	pb.Status_UNAVAILABLE:    ErrUnavailable,
	pb.Status_INTERNAL:       ErrInternal,
}

// StatusError is a failing response status as a Go error: the status, the
// peer's text, and the failures it named.
type StatusError struct {
	Status   pb.Status
	Text     string
	Failures []Failure
}

// Errorf returns a *StatusError with a formatted text.
func Errorf(status pb.Status, format string, args ...any) *StatusError {
	return &StatusError{Status: status, Text: fmt.Sprintf(format, args...)}
}

func (e *StatusError) Error() string {
	msg := statusText(e.Status)
	if e.Text != "" {
		msg += ": " + e.Text
	}
	for i, f := range e.Failures {
		if i == 0 {
			msg += " ("
		} else {
			msg += "; "
		}
		msg += f.String()
		if i == len(e.Failures)-1 {
			msg += ")"
		}
	}
	return msg
}

// Is reports whether target is the sentinel of e's status.
func (e *StatusError) Is(target error) bool {
	s, ok := statusErrs[e.Status]
	if !ok {
		return target == ErrBadResponse
	}
	return s == target
}

func statusText(s pb.Status) string {
	if err, ok := statusErrs[s]; ok {
		return err.Error()
	}
	if s == pb.Status_OK {
		return "ok"
	}
	return ErrBadResponse.Error() + fmt.Sprintf(" (status %d)", int32(s))
}

// ResponseError turns a response's status and text into an error: nil for
// OK, a *StatusError otherwise (with ErrBadResponse for a missing or unknown
// status).
func ResponseError(status pb.Status, text string, failures []*pb.Failure) error {
	if status == pb.Status_OK {
		return nil
	}
	e := &StatusError{Status: status, Text: text}
	for _, f := range failures {
		e.Failures = append(e.Failures, FailureFromWire(f))
	}
	return e
}

// StatusOf maps an error to the status that reports it on the wire: OK for
// nil; a *StatusError's own status; framing and verification errors to
// their statuses; INTERNAL for anything else.
func StatusOf(err error) pb.Status {
	if err == nil {
		return pb.Status_OK
	}
	var se *StatusError
	if errors.As(err, &se) {
		if _, ok := statusErrs[se.Status]; ok {
			return se.Status
		}
		return pb.Status_INTERNAL
	}
	for s, sentinel := range statusErrs {
		if errors.Is(err, sentinel) {
			return s
		}
	}
	var ve *identity.VerifyError
	switch {
	case errors.Is(err, ErrFrameTooLarge):
		return pb.Status_TOO_LARGE
	case errors.Is(err, ErrTruncated), errors.Is(err, ErrUndecodable):
		return pb.Status_BAD_REQUEST
	case errors.As(err, &ve):
		return pb.Status_REFUSED
	}
	return pb.Status_INTERNAL
}

// Failure names one id that failed and why, in Go terms.
type Failure struct {
	Peer    peer.ID
	Role    pb.Role
	Reason  pb.Reason
	Detail  string
	Profile []byte // MOVED: the peer's newer signed profile
}

// String says what failed in the user's words: "12D3…xyz (item): expired: …".
func (f Failure) String() string {
	s := identity.ShortID(f.Peer)
	if f.Role != pb.Role_ROLE_UNSPECIFIED {
		s += " (" + roleText(f.Role) + ")"
	}
	s += ": " + ReasonText(f.Reason)
	if f.Detail != "" {
		s += ": " + f.Detail
	}
	return s
}

func roleText(r pb.Role) string {
	switch r {
	case pb.Role_ITEM:
		return "shared friend"
	case pb.Role_TARGET:
		return "recipient"
	case pb.Role_SHARER:
		return "sharer"
	}
	return "unknown role"
}

// ToWire converts f to its wire form.
func (f Failure) ToWire() *pb.Failure {
	return &pb.Failure{Peer: []byte(f.Peer), Role: f.Role, Reason: f.Reason, Detail: f.Detail, Profile: f.Profile}
}

// FailureFromWire converts a wire failure. An undecodable peer id is kept
// as the raw bytes' string form, so the user still sees what was sent.
func FailureFromWire(f *pb.Failure) Failure {
	id, err := peer.IDFromBytes(f.GetPeer())
	if err != nil {
		id = peer.ID(f.GetPeer())
	}
	return Failure{Peer: id, Role: f.GetRole(), Reason: f.GetReason(), Detail: f.GetDetail(), Profile: f.GetProfile()}
}

// NewFailure builds the failure of peer in role from a verification error.
func NewFailure(p peer.ID, role pb.Role, err error) Failure {
	f := Failure{Peer: p, Role: role, Reason: WireReason(identity.ReasonOf(err))}
	var ve *identity.VerifyError
	if errors.As(err, &ve) {
		f.Detail = ve.Detail
	} else if err != nil {
		f.Detail = err.Error()
	}
	return f
}

var reasonToWire = map[identity.Reason]pb.Reason{
	identity.ReasonMalformed:    pb.Reason_MALFORMED,
	identity.ReasonBadSignature: pb.Reason_BAD_SIGNATURE,
	identity.ReasonWrongPair:    pb.Reason_WRONG_PAIR,
	identity.ReasonNotYetValid:  pb.Reason_NOT_YET_VALID,
	identity.ReasonExpired:      pb.Reason_EXPIRED,
	identity.ReasonRevoked:      pb.Reason_REVOKED,
	identity.ReasonOptedOut:     pb.Reason_OPTED_OUT,
	identity.ReasonMissing:      pb.Reason_MISSING,
}

// WireReason maps a verification reason to its wire value.
func WireReason(r identity.Reason) pb.Reason {
	if w, ok := reasonToWire[r]; ok {
		return w
	}
	return pb.Reason_REASON_UNSPECIFIED
}

// IdentityReason maps a wire reason back to a verification reason;
// reasons that are not about verification (BLOCKED, MAILBOX_FULL) map to
// identity.ReasonNone.
func IdentityReason(w pb.Reason) identity.Reason {
	for r, v := range reasonToWire {
		if v == w {
			return r
		}
	}
	return identity.ReasonNone
}

// ReasonText says a wire reason in the user's words.
func ReasonText(r pb.Reason) string {
	switch r {
	case pb.Reason_MISSING:
		return "no valid attestation or introduction was given"
	case pb.Reason_BLOCKED:
		return "blocked"
	case pb.Reason_MAILBOX_FULL:
		return "their mailbox is full"
	case pb.Reason_THROTTLED:
		return "too many requests rest on the same invite just now"
	case pb.Reason_MOVED:
		return "they moved to other home relays"
	case pb.Reason_REASON_UNSPECIFIED:
		return "unspecified"
	}
	if ir := IdentityReason(r); ir != identity.ReasonNone {
		return ir.String()
	}
	return fmt.Sprintf("reason %d", int32(r))
}
