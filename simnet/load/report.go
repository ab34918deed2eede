package load

import (
	"fmt"
	"io"
	"text/tabwriter"
)

// WriteTable prints the report for people.
func (r *Report) WriteTable(w io.Writer) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	row := func(k string, v any) { fmt.Fprintf(tw, "%s\t%v\n", k, v) }
	row("mode", r.Mode)
	switch r.Mode {
	case "online":
		row("delivered shares/s", fmt.Sprintf("%.0f", r.SharesPerSecond))
		row("latency to the target", fmt.Sprintf("p50 %.3f ms, p99 %.3f ms, p99.9 %.3f ms", r.P50ms, r.P99ms, r.P999ms))
		row("sent / delivered / lost / duplicated", fmt.Sprintf("%d / %d / %d / %d", r.Sent, r.Delivered, r.Lost, r.Duplicates))
		row("relay CPU per delivered share", fmt.Sprintf("%.1f us (relay at %.0f%% of a core)", r.RelayCPUusPerShare, r.RelayCPUPercent))
		row("sealed before the clock / during the run", fmt.Sprintf("%d / %d", r.Presealed, r.SealedInRun))
	case "offline":
		row("stored shares/s", fmt.Sprintf("%.0f (%d stored, %d refused at the quota)", r.StoreSharesPerSecond, r.Sent, r.RefusedAtQuota))
		row("login to last item received and acknowledged", fmt.Sprintf("%.1f ms (first item at %.1f ms)", r.DrainMs, r.FirstItemMs))
		row("delivered / lost / duplicated / redelivered", fmt.Sprintf("%d / %d / %d / %d", r.Delivered, r.Lost, r.Duplicates, r.Redelivered))
	case "conns":
		row("logins/s", fmt.Sprintf("%.0f (p50 %.1f ms, p99 %.1f ms)", r.LoginsPerSecond, r.LoginP50ms, r.LoginP99ms))
		row("logged in / failed", fmt.Sprintf("%d / %d", r.LoggedIn, r.FailedLogins))
		row("live after the hold", r.Live)
		row("relay RSS per user", fmt.Sprintf("%.1f KiB", r.RSSKiBPerConn))
	}
	row("relay RSS", fmt.Sprintf("%d KiB", r.RelayRSSKiB))
	row("wall time", fmt.Sprintf("%.1f s", r.WallSeconds))
	tw.Flush()
}
