package rendezvous

import (
	"time"

	"github.com/kithnet/kith/identity"
	"github.com/kithnet/kith/protocols"
	"github.com/kithnet/kith/protocols/pb"
	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the relay's Prometheus metrics, all prefixed kith_relay_.
type metrics struct {
	shares         *prometheus.CounterVec // by outcome
	shareFailures  *prometheus.CounterVec // per failing id, by reason
	verifySeconds  prometheus.Histogram
	stored         *prometheus.CounterVec // items stored, by kind
	pushedItems    prometheus.Counter
	deliveredItems prometheus.Counter
	expiredItems   prometheus.Counter
	adds           *prometheus.CounterVec // per request, by outcome
	presence       *prometheus.CounterVec // per asked peer, by outcome
	revocations    *prometheus.CounterVec // by source and outcome
	logins         *prometheus.CounterVec // by outcome
	commitSeconds  prometheus.Histogram
	commitOps      prometheus.Histogram
	dht            *prometheus.CounterVec // profile puts and lookups, by outcome
	relayPeers     prometheus.Gauge
	heldItems      *prometheus.CounterVec
	full           *prometheus.CounterVec // items refused for want of room, by room
}

// gauges are what the metrics read from the relay at each scrape.
type gauges struct {
	waiting       func() int   // items in all mailboxes
	waitingBytes  func() int64 // their stored bytes
	strangerItems func() int   // add requests among them
	online        func() int   // peers with an open inbox
	users         func() int   // users whose profile the relay keeps
	nonEmpty      func() int   // mailboxes with an item waiting
	ready         func() bool  // Relay.Ready
	storeItems    int          // the store's limits (store_items, store_bytes)
	storeBytes    int64
}

func newMetrics(reg prometheus.Registerer, g gauges, sigs *identity.SigBatcher) (*metrics, error) {
	m := &metrics{
		shares: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kith_relay_shares_total", Help: "Uplink shares, by outcome (accepted, refused, replay, bad_request, ...).",
		}, []string{"outcome"}),
		shareFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kith_relay_share_failures_total", Help: "Ids that failed a share's verification, by reason.",
		}, []string{"reason"}),
		verifySeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "kith_relay_share_verify_seconds", Help: "Time to verify one share (seal and attestations).",
			Buckets: prometheus.ExponentialBuckets(5e-6, 2, 16),
		}),
		stored: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kith_relay_items_stored_total", Help: "Items stored in mailboxes, by kind.",
		}, []string{"kind"}),
		pushedItems: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "kith_relay_items_pushed_total", Help: "Items pushed to online recipients (including re-sends after reconnects).",
		}),
		deliveredItems: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "kith_relay_items_delivered_total", Help: "Items acknowledged by their recipients and deleted.",
		}),
		expiredItems: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "kith_relay_items_expired_total", Help: "Items dropped undelivered at their TTL.",
		}),
		adds: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kith_relay_add_requests_total", Help: "Add requests and answers, by outcome.",
		}, []string{"outcome"}),
		presence: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kith_relay_presence_asks_total", Help: "Presence asks, by outcome (online, offline, refused).",
		}, []string{"outcome"}),
		revocations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kith_relay_revocations_total", Help: "Revocations received, by source (node, gossip) and outcome (new, known, invalid).",
		}, []string{"source", "outcome"}),
		logins: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kith_relay_logins_total", Help: "Inbox logins, by outcome.",
		}, []string{"outcome"}),
		commitSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "kith_relay_commit_seconds", Help: "Time to write and sync one datastore batch.",
			Buckets: prometheus.ExponentialBuckets(1e-5, 2, 16),
		}),
		commitOps: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "kith_relay_commit_ops", Help: "Operations sharing one datastore batch (group commit).",
			Buckets: prometheus.ExponentialBuckets(1, 2, 9),
		}),
		dht: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kith_relay_dht_profiles_total", Help: "Profiles put into the relays' DHT and looked up in it, by outcome (put, put_failed, put_deferred: no DHT peer yet, found, not_found).",
		}, []string{"outcome"}),
		heldItems: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kith_relay_held_items_total",
			Help: "Items for online recipients held in memory, by outcome: acknowledged (delivered with no item written) or stored (written after the wait).",
		}, []string{"outcome"}),
		full: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kith_relay_mailbox_full_total",
			Help: "Items refused MAILBOX_FULL, by the room that was full: friends or strangers (a recipient's), store or store_strangers (all mailboxes together; strangers may not use the store's reserve).",
		}, []string{"room"}),
		relayPeers: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "kith_relay_dht_relay_peers", Help: "Relays found through the DHT and kept connected, at the last look.",
		}),
	}
	mailbox := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "kith_relay_mailbox_items", Help: "Items waiting in all mailboxes.",
	}, func() float64 {
		return float64(g.waiting())
	})
	mailboxBytes := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "kith_relay_mailbox_bytes", Help: "Stored bytes of the items waiting in all mailboxes (bounded by store_bytes).",
	}, func() float64 { return float64(g.waitingBytes()) })
	sealBatches := prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "kith_relay_seal_batches_total", Help: "Batches of share seal signatures verified together.",
	}, func() float64 { return float64(sigs.Stats().Batches) })
	sealBatched := prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "kith_relay_seal_batched_total", Help: "Share seal signatures verified in batches (the rest one by one).",
	}, func() float64 { return float64(sigs.Stats().Batched) })
	sealFallbacks := prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "kith_relay_seal_batch_fallbacks_total", Help: "Batches with a bad signature, verified again one by one.",
	}, func() float64 { return float64(sigs.Stats().Fallbacks) })
	strangers := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "kith_relay_mailbox_stranger_items", Help: "Add requests waiting in all mailboxes' strangers' rooms (counted in kith_relay_mailbox_items too).",
	}, func() float64 { return float64(g.strangerItems()) })
	online := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "kith_relay_online_peers", Help: "Peers with an open inbox.",
	}, func() float64 { return float64(g.online()) })
	users := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "kith_relay_users", Help: "Users registered here: those who logged in and whose signed profile the relay keeps.",
	}, func() float64 { return float64(g.users()) })
	nonEmpty := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "kith_relay_mailboxes_nonempty", Help: "Mailboxes with at least one item waiting.",
	}, func() float64 { return float64(g.nonEmpty()) })
	ready := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "kith_relay_ready", Help: "1 when the relay is ready (/readyz: the datastore answers and its last write succeeded; a federating relay has a relay in its DHT), else 0.",
	}, func() float64 {
		if g.ready() {
			return 1
		}
		return 0
	})
	storeItems := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "kith_relay_store_items_limit", Help: "store_items: the most items all mailboxes may hold together.",
	})
	storeItems.Set(float64(g.storeItems))
	storeBytes := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "kith_relay_store_bytes_limit", Help: "store_bytes: the most bytes all mailboxes may hold together.",
	})
	storeBytes.Set(float64(g.storeBytes))
	for _, c := range []prometheus.Collector{users, nonEmpty, ready, storeItems, storeBytes, m.shares, m.shareFailures, m.verifySeconds, m.stored, m.pushedItems,
		m.deliveredItems, m.expiredItems, m.adds, m.presence, m.revocations, m.logins, m.commitSeconds, m.commitOps, m.dht, m.relayPeers, m.heldItems, m.full,
		mailbox, mailboxBytes, strangers, online, sealBatches, sealBatched, sealFallbacks} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

func (m *metrics) shareAnswered(status pb.Status, failures []*pb.Failure) {
	m.shares.WithLabelValues(outcomeLabel(status)).Inc()
	for _, f := range failures {
		m.shareFailures.WithLabelValues(protocols.ReasonText(f.Reason)).Inc()
	}
}

func (m *metrics) shareVerified(d time.Duration) { m.verifySeconds.Observe(d.Seconds()) }
func (m *metrics) itemStored(kind string)        { m.stored.WithLabelValues(kind).Inc() }
func (m *metrics) mailboxFull(room string)       { m.full.WithLabelValues(room).Inc() }
func (m *metrics) held(outcome string)           { m.heldItems.WithLabelValues(outcome).Inc() }
func (m *metrics) addOutcome(outcome string)     { m.adds.WithLabelValues(outcome).Inc() }
func (m *metrics) presenceAsk(outcome string)    { m.presence.WithLabelValues(outcome).Inc() }
func (m *metrics) revocation(source, outcome string) {
	m.revocations.WithLabelValues(source, outcome).Inc()
}
func (m *metrics) login(outcome string)      { m.logins.WithLabelValues(outcome).Inc() }
func (m *metrics) pushed(n int)              { m.pushedItems.Add(float64(n)) }
func (m *metrics) delivered(n int)           { m.deliveredItems.Add(float64(n)) }
func (m *metrics) expired(n int)             { m.expiredItems.Add(float64(n)) }
func (m *metrics) dhtProfile(outcome string) { m.dht.WithLabelValues(outcome).Inc() }
func (m *metrics) dhtRelayPeers(n int)       { m.relayPeers.Set(float64(n)) }
func (m *metrics) committed(d time.Duration, ops int) {
	m.commitSeconds.Observe(d.Seconds())
	m.commitOps.Observe(float64(ops))
}
