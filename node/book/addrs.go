package book

import (
	ma "github.com/multiformats/go-multiaddr"
)

// ParseAddrs parses the multiaddrs among ss, skipping any that do not parse.
func ParseAddrs(ss []string) []ma.Multiaddr {
	var out []ma.Multiaddr
	for _, s := range ss {
		if a, err := ma.NewMultiaddr(s); err == nil {
			out = append(out, a)
		}
	}
	return out
}
