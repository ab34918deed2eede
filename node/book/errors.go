package book

import (
	"errors"
	"fmt"
)

// Errors of the book, wrapped with the specifics.
var (
	ErrNotFound     = errors.New("not found")
	ErrNotFriend    = errors.New("not your friend")
	ErrAmbiguous    = errors.New("more than one friend has that name")
	ErrBadArgument  = errors.New("invalid argument")
	ErrAlreadyFinal = errors.New("already answered")
	// ErrNeedsConfirm: the action does more than its name says (blocking
	// a friend ends the friendship); the user must say they agree.
	ErrNeedsConfirm = errors.New("needs confirmation")
)

// kindError is an error of one of the kinds above, in the user's words
// alone: errors.Is finds its kind, and its text does not repeat it.
type kindError struct {
	kind error
	msg  string
}

func (e *kindError) Error() string { return e.msg }
func (e *kindError) Unwrap() error { return e.kind }

// Kindf returns an error of kind (ErrBadArgument, ErrNotFound, ...) that
// reads as the formatted words only, as a person is told them.
func Kindf(kind error, format string, args ...any) error {
	return &kindError{kind: kind, msg: fmt.Sprintf(format, args...)}
}
