package simnet

import (
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// Report is what a run measured. Delivery ratios count every valid item
// the network accepted (a share the relay accepted for a target, a request
// a node sent, an acceptance) against what reached its recipient; 1 means
// all of them did.
type Report struct {
	Nodes       int     `json:"nodes"`
	Relays      int     `json:"relays"`
	Seed        uint64  `json:"seed"`
	Churn       float64 `json:"churn"`
	Adversaries int     `json:"adversaries"`

	SharesAttempted       int     `json:"shares_attempted"`
	SharesExpected        int     `json:"shares_expected"` // (share, target) pairs the relays accepted
	SharesDelivered       int     `json:"shares_delivered"`
	SharesDeliveryRatio   float64 `json:"shares_delivery_ratio"`
	RequestsExpected      int     `json:"requests_expected"`
	RequestsDelivered     int     `json:"requests_delivered"`
	RequestsDeliveryRatio float64 `json:"requests_delivery_ratio"`
	AnswersExpected       int     `json:"answers_expected"`
	AnswersDelivered      int     `json:"answers_delivered"`
	AnswersDeliveryRatio  float64 `json:"answers_delivery_ratio"`
	Declined              int     `json:"declined"`
	// Withdrawn counts items not delivered because the friendship they
	// rested on ended first (Config.Unfriend): the relays withdraw them.
	Withdrawn int `json:"withdrawn"`
	// Merged counts requests replaced, before they arrived, by a newer one
	// to the same person that carries every introduction (a second
	// friend's share of them was picked): only the newer is expected.
	Merged int `json:"merged"`

	Moves       int         `json:"moves"`       // users who moved to another home relay
	Revocations Revocations `json:"revocations"` // the friendships users ended, followed to every relay

	Duplicates     int `json:"duplicates"`      // an item shown to a user twice (must be 0)
	Redeliveries   int `json:"redeliveries"`    // items received again and absorbed by their ids
	ForgedAccepted int `json:"forged_accepted"` // forged or replayed items accepted anywhere (must be 0)

	Attacks  map[string]int `json:"attacks"`  // adversarial attempts, by kind
	Refusals map[string]int `json:"refusals"` // relay refusals, by reason

	Strangers StrangerRooms `json:"stranger_rooms"` // what strangers' floods achieved

	ShareLatency   Latency `json:"share_latency_ms"`   // share sent -> target has it
	RequestLatency Latency `json:"request_latency_ms"` // pick -> recipient has the request
	AnswerLatency  Latency `json:"answer_latency_ms"`  // accept -> requester has the answer

	MailboxDepth []DepthSample `json:"mailbox_depth"`
	PerRelay     []RelayLoad   `json:"per_relay"`
	// Timeline is the workload's course every 10 s of virtual time: items
	// sent and delivered so far, and nodes offline.
	Timeline []TimelineSample `json:"timeline"`

	ChurnEvents    int `json:"churn_events"`
	RelayRestarts  int `json:"relay_restarts"`
	PartitionHeals int `json:"partition_heals"`

	VirtualSeconds float64 `json:"virtual_seconds"`
	WallSeconds    float64 `json:"wall_seconds"`
	PeakRSSBytes   int64   `json:"peak_rss_bytes"`
}

// StrangerRoom is the strangers' room of every relay's mailboxes in a
// simulated network (the relay's stranger_items; its own default is 1000):
// small, so that one flood reaches it within the burst that one invite is
// allowed (the relay's invite_rate, 20).
const StrangerRoom = 16

// StrangerRooms is what the adversaries' floods of friend requests did to
// their victims' mailboxes. Sock puppets' requests (on introductions sealed
// by keys made for the purpose) must all be refused: PuppetStored is 0.
// Invite floods' requests are valid and fill a victim's strangers' room,
// but never past it: Peak, the most seen waiting in one victim's room, is
// at most Limit; the victims' friends' shares and answers are counted in
// the delivery ratios like everyone's.
type StrangerRooms struct {
	Limit          int `json:"limit"`           // each mailbox's strangers' room
	Peak           int `json:"peak"`            // the most waiting in one, seen after a flood
	PuppetRequests int `json:"puppet_requests"` // requests on sock puppets' introductions
	PuppetStored   int `json:"puppet_stored"`   // of them stored anywhere (must be 0)
	InviteRequests int `json:"invite_requests"` // requests on a victim's own invite
	InviteStored   int `json:"invite_stored"`   // of them stored
	RoomFull       int `json:"room_full"`       // refused: the strangers' room was full
	Throttled      int `json:"throttled"`       // refused: too many on one invite just now
}

// Latency is a distribution, in milliseconds of virtual time. Buckets[i]
// counts the latencies up to LatencyBuckets[i] (and above the one
// before); the last counts those above every bound.
type Latency struct {
	N       int     `json:"n"`
	P50     float64 `json:"p50"`
	P95     float64 `json:"p95"`
	P99     float64 `json:"p99"`
	Max     float64 `json:"max"`
	Buckets []int   `json:"buckets,omitempty"`
}

// Revocations is how the ends of friendships spread through the
// federation: Made by users, known at Everywhere relay by the end (every
// relay that was running), Late if that took more than LateAfterSeconds,
// Missing if some relay still did not know at the end; P50 and Max of the
// time it took.
type Revocations struct {
	Made             int     `json:"made"`
	Everywhere       int     `json:"everywhere"`
	Late             int     `json:"late"`
	Missing          int     `json:"missing"`
	LateAfterSeconds float64 `json:"late_after_s"`
	P50Seconds       float64 `json:"p50_s"`
	MaxSeconds       float64 `json:"max_s"`
}

// LatencyBuckets are the upper bounds of Latency.Buckets, in ms.
var LatencyBuckets = []float64{10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10_000, 30_000, 60_000, 120_000}

// TimelineSample is the workload at one moment: items (shares to a target,
// requests, answers) sent and delivered so far, and nodes offline.
type TimelineSample struct {
	AtSeconds float64 `json:"at_s"`
	Sent      int     `json:"sent"`
	Delivered int     `json:"delivered"`
	Offline   int     `json:"offline"`
}

func latencyOf(ds []time.Duration) Latency {
	if len(ds) == 0 {
		return Latency{}
	}
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	q := func(p float64) float64 {
		i := int(p * float64(len(s)-1))
		return float64(s[i].Microseconds()) / 1000
	}
	l := Latency{N: len(s), P50: q(0.50), P95: q(0.95), P99: q(0.99), Max: q(1), Buckets: make([]int, len(LatencyBuckets)+1)}
	for _, d := range s {
		ms := float64(d.Microseconds()) / 1000
		i := sort.SearchFloat64s(LatencyBuckets, ms) // the first bound >= ms
		l.Buckets[i]++
	}
	return l
}

// DepthSample is the number of items waiting at the relays at a moment:
// in all, and at each (PerRelay[i] at relay i).
type DepthSample struct {
	AtSeconds float64 `json:"at_s"`
	Items     int     `json:"items"`
	PerRelay  []int   `json:"per_relay"`
}

// RelayLoad is one relay in a run: its users, its mailboxes, what it
// refused and its protocol traffic during the workload.
type RelayLoad struct {
	Relay       int            `json:"relay"`
	Users       int            `json:"users"`        // nodes whose home relay it is
	MailboxPeak int            `json:"mailbox_peak"` // the most items waiting there in one sample
	MailboxEnd  int            `json:"mailbox_end"`  // items still waiting at the end (undelivered, or not yet acknowledged)
	Refusals    map[string]int `json:"refusals"`     // by reason, as in Report.Refusals
	Restarts    int            `json:"restarts"`
	DownSeconds float64        `json:"down_s"`      // virtual time it was down
	RelayPeers  int            `json:"relay_peers"` // other relays it is connected to at the end
	MessagesIn  int64          `json:"messages_in"` // requests, shares, logins, queries: not acknowledgements
	BytesIn     int64          `json:"bytes_in"`
	MessagesOut int64          `json:"messages_out"`
	BytesOut    int64          `json:"bytes_out"`
	Acked       int64          `json:"acked"` // mailbox items the relay's users acknowledged
}

func ratio(a, b int) float64 {
	if b == 0 {
		return 1
	}
	return float64(a) / float64(b)
}

// OK reports whether the run met the system's promises: everything valid
// delivered, nothing twice, nothing forged accepted.
func (r *Report) OK() bool {
	return r.SharesDeliveryRatio == 1 && r.RequestsDeliveryRatio == 1 && r.AnswersDeliveryRatio == 1 && r.Revocations.Missing == 0 &&
		r.Duplicates == 0 && r.ForgedAccepted == 0 && r.Strangers.PuppetStored == 0 && r.Strangers.Peak <= r.Strangers.Limit
}

// PeakRSS returns the process's peak resident set size, from /proc.
func PeakRSS() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "VmHWM:") {
			f := strings.Fields(line)
			if len(f) >= 2 {
				kb, _ := strconv.ParseInt(f[1], 10, 64)
				return kb * 1024
			}
		}
	}
	return 0
}

// WriteTable prints the report for people.
func (r *Report) WriteTable(w io.Writer) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	row := func(k string, v any) { fmt.Fprintf(tw, "%s\t%v\n", k, v) }
	row("network", fmt.Sprintf("%d nodes, %d relays, churn %.2f, %d adversaries, seed %d", r.Nodes, r.Relays, r.Churn, r.Adversaries, r.Seed))
	row("shares delivered", fmt.Sprintf("%d/%d (%.4f) of %d shares made", r.SharesDelivered, r.SharesExpected, r.SharesDeliveryRatio, r.SharesAttempted))
	row("requests delivered", fmt.Sprintf("%d/%d (%.4f)", r.RequestsDelivered, r.RequestsExpected, r.RequestsDeliveryRatio))
	row("answers delivered", fmt.Sprintf("%d/%d (%.4f), %d declined (never sent)", r.AnswersDelivered, r.AnswersExpected, r.AnswersDeliveryRatio, r.Declined))
	if r.Merged > 0 {
		row("merged", fmt.Sprintf("%d requests replaced before they arrived by one carrying more introductions", r.Merged))
	}
	if r.Withdrawn > 0 {
		row("withdrawn", fmt.Sprintf("%d items whose friendship ended before they arrived", r.Withdrawn))
	}
	if rv := r.Revocations; rv.Made > 0 {
		row("friendships ended", fmt.Sprintf("%d; known at every relay: %d (p50 %.1f s, max %.1f s), late (> %.0f s) %d, missing %d",
			rv.Made, rv.Everywhere, rv.P50Seconds, rv.MaxSeconds, rv.LateAfterSeconds, rv.Late, rv.Missing))
	}
	if r.Moves > 0 {
		row("moves", fmt.Sprintf("%d users moved to another home relay", r.Moves))
	}
	row("duplicates shown", r.Duplicates)
	row("redeliveries absorbed", r.Redeliveries)
	row("forged or replayed accepted", r.ForgedAccepted)
	row("attacks", formatCounts(r.Attacks))
	row("relay refusals", formatCounts(r.Refusals))
	st := r.Strangers
	row("strangers' floods", fmt.Sprintf("sock puppets %d sent, %d stored; on invites %d sent, %d stored, %d room full, %d throttled; room peak %d of %d",
		st.PuppetRequests, st.PuppetStored, st.InviteRequests, st.InviteStored, st.RoomFull, st.Throttled, st.Peak, st.Limit))
	lat := func(l Latency) string {
		return fmt.Sprintf("p50 %.0f ms, p95 %.0f ms, p99 %.0f ms (n=%d)", l.P50, l.P95, l.P99, l.N)
	}
	row("share -> target", lat(r.ShareLatency))
	row("pick -> request arrives", lat(r.RequestLatency))
	row("accept -> answer arrives", lat(r.AnswerLatency))
	peak := 0
	for _, d := range r.MailboxDepth {
		if d.Items > peak {
			peak = d.Items
		}
	}
	row("mailbox depth", fmt.Sprintf("peak %d items, %d samples", peak, len(r.MailboxDepth)))
	for _, t := range r.PerRelay {
		row(fmt.Sprintf("relay %d", t.Relay), fmt.Sprintf("%d users, %d relay peers, down %.0f s; mailboxes peak %d, end %d; in %d msgs / %d KiB, out %d msgs / %d KiB, %d acked; refused: %s",
			t.Users, t.RelayPeers, t.DownSeconds, t.MailboxPeak, t.MailboxEnd, t.MessagesIn, t.BytesIn>>10, t.MessagesOut, t.BytesOut>>10, t.Acked, formatCounts(t.Refusals)))
	}
	row("disruptions", fmt.Sprintf("%d churn events, %d relay restarts, %d partitions healed", r.ChurnEvents, r.RelayRestarts, r.PartitionHeals))
	row("time", fmt.Sprintf("%.0f s virtual, %.1f s wall, peak RSS %d MiB", r.VirtualSeconds, r.WallSeconds, r.PeakRSSBytes>>20))
	tw.Flush()
	fmt.Fprint(w, reportLegend)
}

// reportLegend says what the table's counts mean.
const reportLegend = `
What the counts mean:
  shares made        shares users asked for; "delivered a/b": of the b (share, target) pairs a relay
                     accepted, a reached their target's node (refused ones are in "relay refusals")
  requests, answers  friend requests sent by picks (and acceptances sent back) that reached their
                     recipient; a decline sends nothing
  duplicates shown   an item shown to a user twice (must be 0); "redeliveries absorbed": items
                     received again and dropped by their ids (retries after a lost acknowledgement)
  forged accepted    forged or replayed items any node or relay accepted (must be 0); "attacks"
                     counts what the adversaries tried
  strangers' floods  requests on introductions sealed by sock puppets, and on a victim's invite,
                     and how many the relay stored (the strangers' room bounds them)
  latencies          from sending to the first arrival at the recipient's node, in virtual time
  merged             requests replaced, before they arrived, by a newer one to the same person
                     carrying every introduction (only the newer is expected)
  withdrawn          items that were not delivered because the friendship they rested on ended
                     first (the relays withdraw them); they are not counted as expected
  friendships ended  revocations users made, and how soon every running relay knew each
  relay N            its users (nodes whose home it is, one of their homes with --homes), the other
                     relays it is connected to at the end, how long it was down; items waiting in its mailboxes (the most
                     in one 10 s sample, and at the end); its traffic during the workload, in Kith
                     messages (acknowledgements apart: "acked" counts the items they acknowledged);
                     what it refused, by reason
`

func formatCounts(m map[string]int) string {
	if len(m) == 0 {
		return "none"
	}
	var keys []string
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s %d", k, m[k]))
	}
	return strings.Join(parts, ", ")
}
