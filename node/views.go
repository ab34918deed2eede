package node

import (
	"time"

	"github.com/kithnet/kith/node/book"
)

// The JSON views below are the local API's answers and the CLI's --json
// output; their field names are the command-line contract.

// IDView answers `kith id`.
type IDView struct {
	ID     string `json:"id"`
	Name   string `json:"name"`
	Invite string `json:"invite"`
}

// BlockedView is one row of `kith blocked`.
type BlockedView struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

// BlockBody blocks a peer; Unfriend says the user agreed that blocking a
// friend ends the friendship.
type BlockBody struct {
	Peer     string `json:"peer"`
	Unfriend bool   `json:"unfriend,omitempty"`
}

// InviteView is one of the user's invites (`kith invite list`).
type InviteView struct {
	Token string `json:"token"` // hex; a unique prefix names it
	Label string `json:"label,omitempty"`
	Link  string `json:"link"`
	// General is the invite `kith id` hands out; the others were made
	// with `kith invite create`.
	General   bool      `json:"general"`
	CreatedAt time.Time `json:"created_at,omitzero"`
	ExpiresAt time.Time `json:"expires_at"`
	MaxUses   int       `json:"max_uses"` // 0: any number of people
	Uses      int       `json:"uses"`
	// State is active, expired, used up or revoked.
	State string `json:"state"`
	// Pack is the group a welcome pack shares; AutoAccept, whether its
	// requests are accepted on their own.
	Pack       string `json:"pack,omitempty"`
	AutoAccept bool   `json:"auto_accept,omitempty"`
}

// InviteBody makes an invite: Expires is a duration ("14d", "12h", "90m";
// empty: 14 days), Uses the number of people (0: any).
type InviteBody struct {
	Label   string `json:"label,omitempty"`
	Expires string `json:"expires,omitempty"`
	Uses    int    `json:"uses,omitempty"`
	// Pack, a group, makes a welcome pack; AutoAccept accepts whoever
	// redeems it.
	Pack       string `json:"pack,omitempty"`
	AutoAccept bool   `json:"auto_accept,omitempty"`
}

// SettingsView is `kith settings`: what the user's signed profile says.
type SettingsView struct {
	Name string `json:"name"`
	// Sharing is who may share the user with others: "friends" (any
	// friend) or "nobody".
	Sharing string `json:"sharing"`
	// Seq is the profile's sequence number: a newer profile wins.
	Seq uint64 `json:"seq"`
}

// SettingsBody changes settings; a field left out stays as it is.
type SettingsBody struct {
	Name    *string `json:"name,omitempty"`
	Sharing *string `json:"sharing,omitempty"`
}

// RequestView is one row of `kith requests`.
type RequestView struct {
	ID             string `json:"id"`
	Direction      string `json:"direction"`
	Peer           string `json:"peer"`
	Name           string `json:"name"`
	State          string `json:"state"`
	Introducer     string `json:"introducer"`
	IntroducerName string `json:"introducer_name"`
	// Introducers are every friend whose proven introduction the request
	// carries (the first is Introducer).
	Introducers        []IntroducerView `json:"introducers,omitempty"`
	IntroducerVerified bool             `json:"introducer_verified"`
	Message            string           `json:"message"`
	Sent               string           `json:"sent,omitempty"`
	Provenance         string           `json:"provenance"`
	CreatedAt          string           `json:"created_at"`
	// ExpiresAt is when a pending request expires (state expired).
	ExpiresAt string `json:"expires_at"`
	// Pack, out: the welcome pack the invite promised, and its size; in:
	// the group of the user's welcome pack the request came with.
	Pack     string `json:"pack,omitempty"`
	PackSize int    `json:"pack_size,omitempty"`
	Unopened string `json:"unopened,omitempty"` // why the sealed words did not open (then name and message are unknown)
}

// FriendView is one row of `kith friends`.
type FriendView struct {
	ID               string   `json:"id"`
	Name             string   `json:"name"`
	Groups           []string `json:"groups"`
	Online           bool     `json:"online"`
	IntroducedBy     string   `json:"introduced_by"`
	IntroducedByName string   `json:"introduced_by_name"`
	Since            string   `json:"since"`
	// Sharing is who may share them, as their newest profile the node
	// holds says: friends, ask (they are asked first) or nobody.
	Sharing string `json:"sharing"`
}

// GroupView is one row of `kith groups`.
type GroupView struct {
	Name    string       `json:"name"`
	Members []MemberView `json:"members"`
}

// MemberView is a group member.
type MemberView struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

// ShareResult, TargetStatus and FailedID are the book's record of how a
// share was answered, which `kith share` shows.
type (
	ShareResult  = book.ShareResult
	TargetStatus = book.TargetStatus
	FailedID     = book.FailedID
)

// ShareView is one row of `kith shares`.
type ShareView struct {
	ID         string `json:"id"`
	From       string `json:"from"`
	FromName   string `json:"from_name"`
	Note       string `json:"note,omitempty"`
	ReceivedAt string `json:"received_at"`
	Withdrawn  bool   `json:"withdrawn,omitempty"`
	Dismissed  bool   `json:"dismissed,omitempty"`
	// Awaiting counts the friends the sharer also picked who are asked
	// first: each who agrees follows in a share of their own.
	Awaiting int `json:"awaiting,omitempty"`
	// Pack is the welcome pack's label, when the share keeps the promise
	// of one (the sharer's invite befriended the user with it).
	Pack     string     `json:"pack,omitempty"`
	Unopened string     `json:"unopened,omitempty"` // why the sealed words and names did not open
	Items    []ItemView `json:"items"`
}

// ItemView is one shared friend in a received share.
type ItemView struct {
	ID     string `json:"id"`
	Name   string `json:"name"`
	Group  string `json:"group"`
	State  string `json:"state"`
	Reason string `json:"reason,omitempty"`
}

// PickView is one row of `kith pick`.
type PickView struct {
	Peer    string `json:"peer"`
	Name    string `json:"name"`
	Sent    string `json:"sent"` // direct, relay, queued, skipped
	Reason  string `json:"reason"`
	Request string `json:"request,omitempty"` // the request's id, when one was made
	// Merged says the request replaced a pending one to the same person,
	// adding this share's introduction to those it carried.
	Merged bool `json:"merged,omitempty"`
}

// IntroducerView is one introducer of a request.
type IntroducerView struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

// StatusView answers `kith status`.
type StatusView struct {
	ID         string        `json:"id"`
	Name       string        `json:"name"`
	Addrs      []string      `json:"addrs"`
	Rendezvous []RelayStatus `json:"rendezvous"`
	// Leaving are relays the user left that the node still drains of
	// items stored for them before (peer ids).
	Leaving []string `json:"leaving_relays,omitempty"`
	Friends int      `json:"friends"`
	Pending int      `json:"pending_requests"`
	Shares  int      `json:"shares"`
	Queued  int      `json:"queued"`
	API     string   `json:"api"`
	// Reachability is how others reach the node: "public" (an address of
	// its own is dialable), "circuit" (behind a NAT, through a circuit
	// relay reservation at a rendezvous node; hole punching upgrades
	// connections where the NATs allow), or "unreachable" (friends reach it
	// only through its rendezvous nodes' mailboxes).
	Reachability     string `json:"reachability"`
	ReachabilityText string `json:"reachability_text"` // the same in words
}

// ReachabilityWords says a StatusView.Reachability in a person's words.
func ReachabilityWords(r string) string {
	switch r {
	case "public":
		return "public: friends' nodes connect to yours directly"
	case "circuit":
		return "behind a NAT, reachable through your rendezvous node (circuit relay); connections turn direct where the NATs allow"
	}
	return "not reachable from outside: friends reach you through your rendezvous node's mailbox"
}

// RelayStatus is the state of the connection to one rendezvous node.
type RelayStatus struct {
	Addr      string `json:"addr"`
	Peer      string `json:"peer"`
	LoggedIn  bool   `json:"logged_in"`
	LastError string `json:"last_error,omitempty"`
}

// The local API's request bodies and its error answer.

// ErrorBody is the API's error answer.
type ErrorBody struct {
	Error  string `json:"error"`
	Code   string `json:"code"` // stable: one of the Code constants
	Result any    `json:"result,omitempty"`
}

// The stable codes of an error, in the API's bodies and in `kith --json`
// output: scripts may rely on them; the words in Error may change.
const (
	CodeBadArgument     = "bad_argument"       // the request asks for something invalid
	CodeAmbiguous       = "ambiguous"          // a name or id prefix matches several
	CodeNotFound        = "not_found"          // no such friend, group, share or request
	CodeNotFriend       = "not_friend"         // the peer is not the user's friend
	CodeAlreadyAnswered = "already_answered"   // the request was answered before
	CodeNeedsConfirm    = "needs_confirmation" // the action does more than asked: confirm it
	CodeRefused         = "refused"            // a share failed verification (result says per id)
	CodeNoRelay         = "no_relay"           // no rendezvous node is reachable now
	CodeBadRequest      = "bad_request"        // the HTTP request itself is malformed
	CodeUnauthorized    = "unauthorized"       // no or a wrong API token
	CodeForbidden       = "forbidden"          // from another origin
	CodeMisdirected     = "misdirected"        // a Host that is not the server's own
	CodeInternal        = "internal"
	CodeNotRunning      = "daemon_not_running" // the CLI found no daemon for the data directory
	CodeUsage           = "usage"              // the CLI was called with wrong flags or arguments
)

// AddBody asks to befriend the inviter of an invite link.
type AddBody struct {
	Invite  string `json:"invite"`
	Message string `json:"message"`
}

// PeerBody names one peer.
type PeerBody struct {
	Peer string `json:"peer"`
}

// GroupBody names a group, and members to add or remove.
type GroupBody struct {
	Name    string   `json:"name"`
	Members []string `json:"members"`
}
