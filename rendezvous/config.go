package rendezvous

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/kithnet/kith/protocols"
	"github.com/libp2p/go-libp2p/core/peer"
)

// Duration is a time.Duration written in JSON as a Go duration string
// ("720h", "2s").
type Duration time.Duration

// D returns d as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// MarshalJSON implements json.Marshaler.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// UnmarshalJSON implements json.Unmarshaler.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("duration must be a string such as \"90s\" or \"720h\": %w", err)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// Rate is a per-peer token bucket: PerSecond tokens refill each second, up
// to Burst.
type Rate struct {
	PerSecond float64 `json:"per_second"`
	Burst     int     `json:"burst"`
}

// CircuitConfig sets the circuit relay v2 service that lets nodes behind
// NAT be reached through the relay.
type CircuitConfig struct {
	// Enabled turns the service on. Default true.
	Enabled bool `json:"enabled"`
	// MaxReservations bounds reservations held at once. Default 4096.
	MaxReservations int `json:"max_reservations"`
	// MaxReservationsPerIP bounds reservations from one IP. Default 64
	// (libp2p's default of 8 is too low for users behind one carrier NAT).
	MaxReservationsPerIP int `json:"max_reservations_per_ip"`
	// MaxCircuits bounds relayed connections per peer. Default 16.
	MaxCircuits int `json:"max_circuits"`
	// DurationLimit ends a relayed connection after this long. Default 2m:
	// long enough to hole punch or to send a few requests.
	DurationLimit Duration `json:"duration_limit"`
	// DataLimit ends a relayed connection after this many bytes each way.
	// Default 128 KiB.
	DataLimit int64 `json:"data_limit"`
}

// Config is everything an operator can set. DefaultConfig documents every
// default; a config file (JSON) overrides only the fields it names.
type Config struct {
	// TargetsPerShare bounds the targets of one share. Default and ceiling
	// protocols.MaxTargetsPerShare (16).
	TargetsPerShare int `json:"targets_per_share"`
	// ItemsPerShare bounds the shared friends of one share. Default and
	// ceiling protocols.MaxItemsPerShare (256).
	ItemsPerShare int `json:"items_per_share"`
	// RequestsPerAdd bounds the requests of one combined add request.
	// Default and ceiling protocols.MaxRequestsPerAdd (64).
	RequestsPerAdd int `json:"requests_per_add"`

	// MailboxItems is the per-recipient quota of waiting items from the
	// recipient's friends: items resting on a friendship with the
	// recipient (shares, answers to the recipient's requests,
	// withdrawals). Default 20000.
	MailboxItems int `json:"mailbox_items"`
	// MailboxBytes is the per-recipient quota of their stored bytes.
	// Default 64 MiB.
	MailboxBytes int64 `json:"mailbox_bytes"`
	// StrangerItems and StrangerBytes are the per-recipient room for add
	// requests, which rest on an introduction or an invite: their senders
	// are not the recipient's friends yet. A full strangers' room refuses
	// add requests only (MAILBOX_FULL); friends' items still have their
	// own room. An add request takes 1.5-3 KB. Defaults 1000 requests and
	// 4 MiB.
	StrangerItems int   `json:"stranger_items"`
	StrangerBytes int64 `json:"stranger_bytes"`
	// StoreItems and StoreBytes bound the items waiting in all mailboxes
	// together, and their stored bytes: past them every new item is
	// refused (MAILBOX_FULL, "the relay's store is full"), so that
	// identities made up by the thousand cannot fill the disk (or the
	// memory: a waiting item's metadata takes about 1.1 KB, 1.4 KB when
	// each item rests on friendships of its own) with a mailbox each.
	// Defaults 500,000 items and 8 GiB.
	StoreItems int   `json:"store_items"`
	StoreBytes int64 `json:"store_bytes"`
	// StoreReserve is the part of StoreItems and StoreBytes that only
	// friends' items may use: add requests are refused once the store is
	// filled to 1 - StoreReserve. 0 to 0.9. Default 0.2.
	StoreReserve float64 `json:"store_reserve"`
	// MailboxTTL is how long an undelivered item is kept, and how long an
	// item id is remembered so that retries are not delivered twice.
	// Default 30 days.
	MailboxTTL Duration `json:"mailbox_ttl"`
	// SweepInterval is how often expired items are dropped. Default 1m.
	SweepInterval Duration `json:"sweep_interval"`

	// RegistrationTTL is how long a login's registration (profile and
	// addresses) is announced to presence queries after the node was last
	// seen. Default 10m.
	RegistrationTTL Duration `json:"registration_ttl"`
	// InboxWindow is the default number of unacknowledged items in flight
	// to one node; a node may ask for fewer or up to MaxInboxWindow. Default
	// 64.
	InboxWindow int `json:"inbox_window"`
	// MaxInboxWindow caps what a node may ask for. Default 1024.
	MaxInboxWindow int `json:"max_inbox_window"`
	// DeliverWait is how long a share or request to an online recipient
	// waits for the recipient's acknowledgement before the sender is told
	// "stored" instead of "delivered". It is always stored first. Default
	// 2s.
	DeliverWait Duration `json:"deliver_wait"`

	// ShareRate limits shares per sender. Default 50/s, burst 200.
	ShareRate Rate `json:"share_rate"`
	// AddRate limits add messages per sender. Default 50/s, burst 200.
	AddRate Rate `json:"add_rate"`
	// RequestRate limits add requests per sender, each request of a
	// combined one counted (AddRate counts messages, and one combined
	// message carries up to 64). Default 10/s, burst 256: a pick of a
	// whole large share goes out at once.
	RequestRate Rate `json:"request_rate"`
	// InviteRate limits the add requests resting on any one invite,
	// whoever sends them: an invite link may be posted for anyone to use,
	// and fresh identities cost nothing, so per-sender limits alone do not
	// bound it. Default 0.2/s (12 a minute), burst 20.
	InviteRate Rate `json:"invite_rate"`
	// PresenceRate limits presence queries per asker. Default 20/s, burst 100.
	PresenceRate Rate `json:"presence_rate"`
	// RevokeRate limits revoke requests per sender. Default 10/s, burst 50.
	RevokeRate Rate `json:"revoke_rate"`
	// LoginRate limits logins per peer. Default 2/s, burst 10.
	LoginRate Rate `json:"login_rate"`
	// RevSyncRate limits the revocation syncs another relay may start
	// with this one. Default 0.1/s, burst 10.
	RevSyncRate Rate `json:"revsync_rate"`
	// RevocationSync is how often the relay reconciles its revocations
	// with each relay it is connected to (it does so on connecting too).
	// Default 5m.
	RevocationSync Duration `json:"revocation_sync"`

	// Circuit configures circuit relay v2.
	Circuit CircuitConfig `json:"circuit"`

	// Peers are other relays (multiaddrs ending in /p2p/<id>) to stay
	// connected to, for revocation gossip, and to join the DHT through.
	// Default none.
	Peers []string `json:"peers"`
	// Admit are more relays (peer ids) that may take part in this relay's
	// DHT, revocation gossip and revocation sync, besides Peers; their
	// addresses are found through the DHT. Nobody else may: the relays'
	// federation is the one its operators name. Default none.
	Admit []string `json:"admit"`

	// DHT sets the relays' Kademlia DHT.
	DHT DHTConfig `json:"dht"`

	// MaxConnections is the inbound connection limit given to the libp2p
	// resource manager by kith-rendezvous. Default 20000.
	MaxConnections int `json:"max_connections"`
	// MaxStreamsPerPeer is the per-peer stream limit. Default 64.
	MaxStreamsPerPeer int `json:"max_streams_per_peer"`
	// MaxMemoryMiB is the resource manager's memory limit. It bounds how
	// many users can be logged in at once: each inbox stream may be sent
	// a whole Yamux window (256 KiB) before the relay reads it, and the
	// resource manager counts that, although a user costs about 80 KiB of
	// resident memory. Default 0: sized from MaxConnections (see
	// MemoryBudgetMiB); 20000 connections give 5,824 MiB.
	MaxMemoryMiB int64 `json:"max_memory_mib"`
}

// DHTConfig sets the relays' Kademlia DHT (DESIGN section 6), a private
// one (protocol /kith/kad/1.0.0) that only relays serve. Through it relays
// find each other, beyond the peers configured, and stay connected to a
// few for revocation gossip; and each relay publishes the signed profiles
// of the users who log in there, so that any relay can tell a sender where
// a user's home relays are (presence queries with want_profiles).
type DHTConfig struct {
	// Enabled runs the DHT. Default true.
	Enabled bool `json:"enabled"`
	// MaxRelayPeers bounds the relays found through the DHT that this one
	// stays connected to. Default 16.
	MaxRelayPeers int `json:"max_relay_peers"`
	// FindInterval is how often the relay looks for other relays. Default
	// 5m (the first look is at start).
	FindInterval Duration `json:"find_interval"`
	// Republish is how often every stored profile is put again; DHT
	// records expire after 36h. Default 12h.
	Republish Duration `json:"republish"`
	// LookupTimeout bounds the DHT lookups that one presence query makes,
	// and the one made for a share's target or a request's recipient
	// who never logged in here.
	// Default 5s.
	LookupTimeout Duration `json:"lookup_timeout"`
	// PutRate limits the records one relay may store in this one's DHT.
	// Default 20/s, burst 2000 (a relay republishing its users' profiles
	// every twelve hours).
	PutRate Rate `json:"put_rate"`
}

// DefaultConfig returns the defaults, as documented on each field.
func DefaultConfig() Config {
	return Config{
		TargetsPerShare: protocols.MaxTargetsPerShare,
		ItemsPerShare:   protocols.MaxItemsPerShare,
		RequestsPerAdd:  protocols.MaxRequestsPerAdd,
		MailboxItems:    20000,
		MailboxBytes:    64 << 20,
		StrangerItems:   1000,
		StrangerBytes:   4 << 20,
		StoreItems:      500_000,
		StoreBytes:      8 << 30,
		StoreReserve:    0.2,
		MailboxTTL:      Duration(30 * 24 * time.Hour),
		SweepInterval:   Duration(time.Minute),
		RegistrationTTL: Duration(10 * time.Minute),
		InboxWindow:     64,
		MaxInboxWindow:  1024,
		DeliverWait:     Duration(2 * time.Second),
		ShareRate:       Rate{50, 200},
		AddRate:         Rate{50, 200},
		RequestRate:     Rate{10, 256},
		InviteRate:      Rate{0.2, 20},
		PresenceRate:    Rate{20, 100},
		RevokeRate:      Rate{10, 50},
		LoginRate:       Rate{2, 10},
		RevSyncRate:     Rate{0.1, 10},
		RevocationSync:  Duration(5 * time.Minute),
		Circuit: CircuitConfig{
			Enabled: true, MaxReservations: 4096, MaxReservationsPerIP: 64, MaxCircuits: 16,
			DurationLimit: Duration(2 * time.Minute), DataLimit: 128 << 10,
		},
		DHT: DHTConfig{
			Enabled: true, MaxRelayPeers: 16, FindInterval: Duration(5 * time.Minute),
			Republish: Duration(12 * time.Hour), LookupTimeout: Duration(5 * time.Second), PutRate: Rate{20, 2000},
		},
		MaxConnections:    20000,
		MaxStreamsPerPeer: 64,
	}
}

// LoadConfig reads a JSON config file over the defaults. Unknown fields
// are an error, so a typo never silently keeps a default.
func LoadConfig(path string) (Config, error) {
	cfg := DefaultConfig()
	data, err := os.ReadFile(path)
	if err != nil {
		return cfg, fmt.Errorf("rendezvous: config: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&cfg); err != nil {
		return cfg, fmt.Errorf("rendezvous: config %s: %w", path, err)
	}
	if err := cfg.Validate(); err != nil {
		return cfg, fmt.Errorf("rendezvous: config %s: %w", path, err)
	}
	return cfg, nil
}

// Validate says exactly what is wrong with c.
func (c *Config) Validate() error {
	var errs []error
	check := func(ok bool, format string, args ...any) {
		if !ok {
			errs = append(errs, fmt.Errorf(format, args...))
		}
	}
	check(c.TargetsPerShare >= 1 && c.TargetsPerShare <= protocols.MaxTargetsPerShare,
		"targets_per_share must be 1..%d, not %d", protocols.MaxTargetsPerShare, c.TargetsPerShare)
	check(c.ItemsPerShare >= 1 && c.ItemsPerShare <= protocols.MaxItemsPerShare,
		"items_per_share must be 1..%d, not %d", protocols.MaxItemsPerShare, c.ItemsPerShare)
	check(c.RequestsPerAdd >= 1 && c.RequestsPerAdd <= protocols.MaxRequestsPerAdd,
		"requests_per_add must be 1..%d, not %d", protocols.MaxRequestsPerAdd, c.RequestsPerAdd)
	check(c.MailboxItems >= 1, "mailbox_items must be positive, not %d", c.MailboxItems)
	check(c.MailboxBytes >= protocols.MaxInboxMessage, "mailbox_bytes must be at least %d, not %d", protocols.MaxInboxMessage, c.MailboxBytes)
	check(c.StrangerItems >= 1, "stranger_items must be positive, not %d", c.StrangerItems)
	check(c.StrangerBytes >= protocols.MaxInboxMessage, "stranger_bytes must be at least %d, not %d", protocols.MaxInboxMessage, c.StrangerBytes)
	check(c.StoreReserve >= 0 && c.StoreReserve <= 0.9, "store_reserve must be 0..0.9, not %g", c.StoreReserve)
	check(c.StoreItems >= 1, "store_items must be positive, not %d", c.StoreItems)
	check(c.StoreBytes >= protocols.MaxInboxMessage, "store_bytes must be at least %d, not %d", protocols.MaxInboxMessage, c.StoreBytes)
	check(c.MailboxTTL.D() >= time.Minute, "mailbox_ttl must be at least 1m, not %s", c.MailboxTTL.D())
	check(c.SweepInterval.D() >= time.Second, "sweep_interval must be at least 1s, not %s", c.SweepInterval.D())
	check(c.RegistrationTTL.D() >= time.Second, "registration_ttl must be at least 1s, not %s", c.RegistrationTTL.D())
	check(c.InboxWindow >= 1 && c.InboxWindow <= c.MaxInboxWindow, "inbox_window must be 1..max_inbox_window (%d), not %d", c.MaxInboxWindow, c.InboxWindow)
	check(c.MaxInboxWindow >= 1 && c.MaxInboxWindow <= 4096, "max_inbox_window must be 1..4096, not %d", c.MaxInboxWindow)
	check(c.RevocationSync.D() >= time.Second, "revocation_sync must be at least 1s, not %s", c.RevocationSync.D())
	check(c.DeliverWait.D() >= 0 && c.DeliverWait.D() <= time.Minute, "deliver_wait must be 0..1m, not %s", c.DeliverWait.D())
	for name, r := range map[string]Rate{"share_rate": c.ShareRate, "add_rate": c.AddRate,
		"request_rate": c.RequestRate, "invite_rate": c.InviteRate,
		"presence_rate": c.PresenceRate, "revoke_rate": c.RevokeRate, "login_rate": c.LoginRate, "revsync_rate": c.RevSyncRate} {
		check(r.PerSecond > 0 && r.Burst >= 1, "%s needs per_second > 0 and burst >= 1, not %+v", name, r)
	}
	if c.Circuit.Enabled {
		check(c.Circuit.MaxReservations >= 1, "circuit.max_reservations must be positive")
		check(c.Circuit.MaxReservationsPerIP >= 1, "circuit.max_reservations_per_ip must be positive")
		check(c.Circuit.MaxCircuits >= 1, "circuit.max_circuits must be positive")
		check(c.Circuit.DurationLimit.D() >= time.Second, "circuit.duration_limit must be at least 1s")
		check(c.Circuit.DataLimit >= 1024, "circuit.data_limit must be at least 1024")
	}
	if c.DHT.Enabled {
		check(c.DHT.MaxRelayPeers >= 0, "dht.max_relay_peers must not be negative")
		check(c.DHT.FindInterval.D() >= time.Second, "dht.find_interval must be at least 1s")
		check(c.DHT.Republish.D() >= time.Minute && c.DHT.Republish.D() <= 24*time.Hour, "dht.republish must be 1m..24h (records expire after 36h)")
		check(c.DHT.LookupTimeout.D() >= 100*time.Millisecond && c.DHT.LookupTimeout.D() <= time.Minute, "dht.lookup_timeout must be 100ms..1m")
		check(c.DHT.PutRate.PerSecond > 0 && c.DHT.PutRate.Burst >= 1, "dht.put_rate needs per_second > 0 and burst >= 1, not %+v", c.DHT.PutRate)
	}
	for _, a := range c.Admit {
		_, err := peer.Decode(a)
		check(err == nil, "admit: %q is not a peer id", a)
	}
	check(c.MaxConnections >= 16, "max_connections must be at least 16, not %d", c.MaxConnections)
	check(c.MaxStreamsPerPeer >= 8, "max_streams_per_peer must be at least 8, not %d", c.MaxStreamsPerPeer)
	check(c.MaxMemoryMiB == 0 || c.MaxMemoryMiB >= 64, "max_memory_mib must be 0 (sized from max_connections) or at least 64, not %d", c.MaxMemoryMiB)
	return errors.Join(errs...)
}

// window returns the inbox window of a session whose node asked for
// asked: the default for 0, at most MaxInboxWindow.
func (c *Config) window(asked uint32) int {
	if asked == 0 {
		return c.InboxWindow
	}
	return int(min(asked, uint32(c.MaxInboxWindow)))
}

// quota returns the per-recipient quota the config sets.
func (c *Config) quota() Quota {
	return Quota{Items: c.MailboxItems, Bytes: c.MailboxBytes, StrangerItems: c.StrangerItems, StrangerBytes: c.StrangerBytes}
}

// budget returns the store-wide budget the config sets, with the part
// strangers' items may take.
func (c *Config) budget() Budget {
	return Budget{
		Items: c.StoreItems, Bytes: c.StoreBytes,
		StrangerItems: int(float64(c.StoreItems) * (1 - c.StoreReserve)),
		StrangerBytes: int64(float64(c.StoreBytes) * (1 - c.StoreReserve)),
	}
}

func (c *Config) limits() protocols.Limits {
	return protocols.Limits{TargetsPerShare: c.TargetsPerShare, ItemsPerShare: c.ItemsPerShare, RequestsPerAdd: c.RequestsPerAdd}
}

// budgetPerUserKiB is what one logged-in user holds against the resource
// manager's memory limit: the Yamux receive window of its inbox stream
// (256 KiB, fixed by the protocol) and the session's own reservation.
// Measured: with 1,024 MiB the relay carried 3,900 users and reset the
// rest.
const budgetPerUserKiB = 256 + sessionMemory>>10

// budgetBaseMiB is the memory budget beyond the logged-in users: short
// request streams, the circuit relay, identify.
const budgetBaseMiB = 512

// MemoryBudgetMiB returns the resource manager's memory limit: MaxMemoryMiB
// if set, else enough for MaxConnections logged-in users.
func (c Config) MemoryBudgetMiB() int64 {
	if c.MaxMemoryMiB > 0 {
		return c.MaxMemoryMiB
	}
	return budgetBaseMiB + int64(c.MaxConnections)*budgetPerUserKiB>>10
}

// Effective returns c with the values derived at start filled in (the
// memory budget), as the relay runs with them: what --print-config shows.
func (c Config) Effective() Config {
	c.MaxMemoryMiB = c.MemoryBudgetMiB()
	return c
}

// UsersCarried returns about how many users can be logged in at once:
// the connection limit, or fewer if the memory budget runs out first
// (with nothing else using it).
func (c Config) UsersCarried() int {
	return int(min(int64(c.MaxConnections), c.MemoryBudgetMiB()<<10/budgetPerUserKiB))
}
