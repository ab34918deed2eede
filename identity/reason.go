package identity

import (
	"errors"
	"fmt"
)

// Reason says why a record failed verification. The same reasons travel on
// the wire (protocols maps them one to one) and reach the user.
type Reason int

// The verification reasons. ReasonNone is never the reason of an error.
const (
	ReasonNone         Reason = iota
	ReasonMalformed           // the bytes do not decode to a well-formed record
	ReasonBadSignature        // a signature does not verify for the key it names
	ReasonWrongPair           // the record is valid but about other peers
	ReasonNotYetValid         // issued in the future, beyond the allowed clock skew
	ReasonExpired             // past its expiry
	ReasonRevoked             // a revocation signed by one of the friends ends it
	ReasonOptedOut            // the subject's profile says nobody may share them
	ReasonMissing             // a record that must be present was not given
)

var reasonNames = [...]string{
	ReasonNone:         "none",
	ReasonMalformed:    "malformed",
	ReasonBadSignature: "bad signature",
	ReasonWrongPair:    "wrong pair",
	ReasonNotYetValid:  "not yet valid",
	ReasonExpired:      "expired",
	ReasonRevoked:      "revoked",
	ReasonOptedOut:     "opted out of sharing",
	ReasonMissing:      "missing",
}

// String returns the reason in the user's words.
func (r Reason) String() string {
	if r >= 0 && int(r) < len(reasonNames) {
		return reasonNames[r]
	}
	return fmt.Sprintf("reason(%d)", int(r))
}

// Reasons lists every reason an error can carry, in order.
func Reasons() []Reason {
	return []Reason{ReasonMalformed, ReasonBadSignature, ReasonWrongPair, ReasonNotYetValid,
		ReasonExpired, ReasonRevoked, ReasonOptedOut, ReasonMissing}
}

// Sentinel errors, one per reason: errors.Is(err, ErrExpired) holds for any
// *VerifyError whose Reason is ReasonExpired.
var (
	ErrMalformed    = errors.New("identity: malformed")
	ErrBadSignature = errors.New("identity: bad signature")
	ErrWrongPair    = errors.New("identity: wrong pair")
	ErrNotYetValid  = errors.New("identity: not yet valid")
	ErrExpired      = errors.New("identity: expired")
	ErrRevoked      = errors.New("identity: revoked")
	ErrOptedOut     = errors.New("identity: opted out of sharing")
	ErrMissing      = errors.New("identity: missing")
)

var reasonErrs = map[Reason]error{
	ReasonMalformed:    ErrMalformed,
	ReasonBadSignature: ErrBadSignature,
	ReasonWrongPair:    ErrWrongPair,
	ReasonNotYetValid:  ErrNotYetValid,
	ReasonExpired:      ErrExpired,
	ReasonRevoked:      ErrRevoked,
	ReasonOptedOut:     ErrOptedOut,
	ReasonMissing:      ErrMissing,
}

// Sentinel returns the sentinel error for r, or nil for ReasonNone.
func (r Reason) Sentinel() error { return reasonErrs[r] }

// VerifyError is the error every verification returns: what was checked, the
// reason it failed and, where useful, a detail for logs and the user.
type VerifyError struct {
	Record string // "attestation", "profile", "revocation", "seal", "introduction", "offer"
	Reason Reason
	Detail string
	Err    error // an underlying decode error, if any
}

func (e *VerifyError) Error() string {
	msg := e.Record + ": " + e.Reason.String()
	if e.Detail != "" {
		msg += ": " + e.Detail
	}
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return msg
}

// Is reports whether target is the sentinel of e's reason.
func (e *VerifyError) Is(target error) bool {
	s := e.Reason.Sentinel()
	return s != nil && s == target
}

// Unwrap returns the underlying decode error, if any.
func (e *VerifyError) Unwrap() error { return e.Err }

// ReasonOf returns the reason carried by err: ReasonNone for nil, the
// reason of a *VerifyError anywhere in its chain, and ReasonMalformed for
// any other error.
func ReasonOf(err error) Reason {
	if err == nil {
		return ReasonNone
	}
	var ve *VerifyError
	if errors.As(err, &ve) {
		return ve.Reason
	}
	return ReasonMalformed
}

func fail(record string, r Reason, format string, args ...any) *VerifyError {
	return &VerifyError{Record: record, Reason: r, Detail: fmt.Sprintf(format, args...)}
}

func malformed(record string, err error, format string, args ...any) *VerifyError {
	return &VerifyError{Record: record, Reason: ReasonMalformed, Detail: fmt.Sprintf(format, args...), Err: err}
}
