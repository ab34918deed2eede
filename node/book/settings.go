package book

import (
	"github.com/kithnet/kith/identity"
)

// Rename changes the user's display name (a new profile sequence).
func (b *Book) Rename(name string) ([]Mutation, error) {
	if err := identity.ValidateName(name); err != nil {
		return nil, Kindf(ErrBadArgument, "%v", err)
	}
	b.Settings.Name = name
	b.Settings.Seq++
	return []Mutation{put(keySettings, b.Settings)}, nil
}

// SaveSettings returns the mutation storing the settings.
func (b *Book) SaveSettings() []Mutation { return []Mutation{put(keySettings, b.Settings)} }
