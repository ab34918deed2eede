package protocols

import (
	"time"

	"github.com/libp2p/go-libp2p/core/protocol"
)

// Protocol ids, one per exchange.
const (
	// ShareProtocol carries the uplink share command, node -> relay.
	ShareProtocol protocol.ID = "/kith/share/1.0.0"
	// InboxProtocol is the long-lived mailbox stream, node <-> relay.
	InboxProtocol protocol.ID = "/kith/inbox/1.0.0"
	// AddProtocol carries add requests and answers, node -> node directly or
	// node -> relay (combined requests). Version 2: an introduction counts
	// only with the introducer's both-signed friendships with both sides
	// inside it (identity.Verifier.Introduction).
	AddProtocol protocol.ID = "/kith/add/2.0.0"
	// PresenceProtocol asks a relay which peers are online, node -> relay.
	// Version 2: an introduction given as the asker's proof must carry the
	// introducer's friendships, as for AddProtocol.
	PresenceProtocol protocol.ID = "/kith/presence/2.0.0"
	// LegacyAddProtocol and LegacyPresenceProtocol are the version 1 ids.
	// The messages are the same; version 1 introductions carry no
	// friendships. Relays and nodes still answer them, with the version 2
	// rules, so that an older peer hears why its introductions are refused
	// (reason MISSING) instead of "protocol not supported", and its
	// invites and friendships keep working. Callers offer version 2 first
	// and version 1 after it, so that an older relay (which ignores the
	// friendships an introduction now carries) is still reached.
	LegacyAddProtocol      protocol.ID = "/kith/add/1.0.0"
	LegacyPresenceProtocol protocol.ID = "/kith/presence/1.0.0"
	// RevokeProtocol hands revocations to a relay, node -> relay.
	RevokeProtocol protocol.ID = "/kith/revoke/1.0.0"
	// DirectShareProtocol hands a share to its target's node directly,
	// node -> node, when none of the target's home relays can be reached:
	// one Share, one ShareResponse. The target verifies it end to end,
	// as any share it receives.
	DirectShareProtocol protocol.ID = "/kith/share-direct/1.0.0"
	// RevSyncProtocol reconciles two relays' revocation sets, relay <->
	// relay (messages RevSyncStep).
	RevSyncProtocol protocol.ID = "/kith/revsync/1.0.0"
	// RevocationTopic is the gossipsub topic on which relays share
	// revocations. Each message is the bare identity revocation bytes.
	RevocationTopic = "/kith/revocations/1.0.0"
)

// Per-message size caps. A frame announcing more is refused before a byte of
// it is read.
const (
	MaxShareMessage    = 1 << 20                  // 256 items with profiles (each with its encryption key) and 16 sealed parts
	MaxInboxMessage    = MaxShareMessage + 64<<10 // relay -> node: an inbox item carries a whole share
	MaxInboxClient     = 48 << 10                 // node -> relay: a login (two records) or acknowledgements
	MaxAddMessage      = 512 << 10                // a combined request carries many requests
	MaxIntroductions   = 8                        // in one add request: the friends who shared the requester
	MaxPresenceMessage = 64 << 10
	MaxRevokeMessage   = 64 << 10
	MaxRevSyncMessage  = 2 << 20 // a step of a revocation sync: ranges, id lists, revocations
	MaxResponseMessage = 64 << 10
)

// Count limits that hold for every relay. A relay may configure lower
// ones (see Limits).
const (
	MaxTargetsPerShare   = 16
	MaxItemsPerShare     = 256
	MaxRequestsPerAdd    = 64
	MaxAsksPerPresence   = 256
	MaxRevocationsPerMsg = 64
	MaxMessageText       = 280 // bytes of free text in a share note or add request
)

// Deadlines for one request/response exchange. The inbox stream has no
// overall deadline; each frame on it has FrameDeadline.
const (
	StreamDeadline = 30 * time.Second
	FrameDeadline  = 60 * time.Second
)

// Limits are the count limits a relay enforces on shares and combined
// requests. The zero value means the protocol maxima.
type Limits struct {
	TargetsPerShare int // default and ceiling MaxTargetsPerShare
	ItemsPerShare   int // default and ceiling MaxItemsPerShare
	RequestsPerAdd  int // default and ceiling MaxRequestsPerAdd
}

func (l Limits) targets() int { return capAt(l.TargetsPerShare, MaxTargetsPerShare) }
func (l Limits) items() int   { return capAt(l.ItemsPerShare, MaxItemsPerShare) }
func (l Limits) requests() int {
	return capAt(l.RequestsPerAdd, MaxRequestsPerAdd)
}

func capAt(v, max int) int {
	if v <= 0 || v > max {
		return max
	}
	return v
}
