package book

import (
	"errors"
)

// Errors of the book, wrapped with the specifics.
var (
	ErrNotFound     = errors.New("not found")
	ErrNotFriend    = errors.New("not your friend")
	ErrAmbiguous    = errors.New("more than one friend has that name")
	ErrBadArgument  = errors.New("invalid argument")
	ErrAlreadyFinal = errors.New("already answered")
)
