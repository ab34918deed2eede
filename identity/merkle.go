package identity

import (
	"crypto/sha256"
	"math/bits"
)

// The share seal's Merkle tree follows RFC 6962 (section 2.1): leaf hashes
// are SHA-256(0x00 || data), interior nodes SHA-256(0x01 || left || right),
// and a tree of n leaves splits at the largest power of two below n. Inclusion
// proofs are verified with the algorithm of RFC 9162 section 2.1.3.2.

// MaxSealLeaves bounds the leaves of one seal: 1 body digest plus one leaf per
// (target, item) pair.
const MaxSealLeaves = 1 << 16

func leafHash(parts ...[]byte) digest {
	h := sha256.New()
	h.Write([]byte{0})
	for _, p := range parts {
		h.Write(p)
	}
	var d digest
	h.Sum(d[:0])
	return d
}

func nodeHash(l, r digest) digest {
	var buf [1 + 2*sha256.Size]byte
	buf[0] = 1
	copy(buf[1:], l[:])
	copy(buf[1+sha256.Size:], r[:])
	return sha256.Sum256(buf[:])
}

// splitPoint returns the largest power of two strictly below n (n >= 2).
func splitPoint(n int) int {
	return 1 << (bits.Len(uint(n-1)) - 1)
}

// merkleRoot returns the root of leaves (which are leaf hashes). It is
// called with at least one leaf.
func merkleRoot(leaves []digest) digest {
	if len(leaves) == 1 {
		return leaves[0]
	}
	k := splitPoint(len(leaves))
	return nodeHash(merkleRoot(leaves[:k]), merkleRoot(leaves[k:]))
}

// merklePath returns the inclusion proof of leaf m, siblings from the leaf
// up.
func merklePath(m int, leaves []digest) []digest {
	if len(leaves) <= 1 {
		return nil
	}
	k := splitPoint(len(leaves))
	if m < k {
		return append(merklePath(m, leaves[:k]), merkleRoot(leaves[k:]))
	}
	return append(merklePath(m-k, leaves[k:]), merkleRoot(leaves[:k]))
}

// verifyPath reports whether leaf at index of a tree of size leaves hashes
// up through path to root.
func verifyPath(index, size uint64, leaf digest, path []digest, root digest) bool {
	if index >= size {
		return false
	}
	fn, sn := index, size-1
	r := leaf
	for _, p := range path {
		if sn == 0 {
			return false
		}
		if fn&1 == 1 || fn == sn {
			r = nodeHash(p, r)
			for fn&1 == 0 && fn != 0 {
				fn >>= 1
				sn >>= 1
			}
		} else {
			r = nodeHash(r, p)
		}
		fn >>= 1
		sn >>= 1
	}
	return sn == 0 && r == root
}
