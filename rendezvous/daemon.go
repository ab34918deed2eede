package rendezvous

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"path/filepath"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/bloom"
	ds "github.com/ipfs/go-datastore"
	pebbleds "github.com/ipfs/go-ds-pebble"
	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/host"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/kithnet/kith/identity"
)

// DaemonOptions are what kith-rendezvous is started with.
type DaemonOptions struct {
	// DataDir holds the relay's key (key) and datastore (store/).
	DataDir string
	// Listen are the addresses to listen on.
	Listen []ma.Multiaddr
	// MetricsAddr, if set, serves Prometheus metrics at
	// http://MetricsAddr/metrics, with /healthz (the process answers) and
	// /readyz (Relay.Ready: storage and DHT, 503 when not ready).
	MetricsAddr string
	// Config is the operator's configuration.
	Config Config
	// Pprof adds Go's profiling handlers (/debug/pprof/) to the metrics
	// server. Off by default: profiles show internals.
	Pprof bool
	// Logger receives structured logs.
	Logger *slog.Logger
}

// DefaultListen are the listen addresses when none are given: TCP and
// QUIC on port 4001 of every interface.
func DefaultListen() []ma.Multiaddr {
	return []ma.Multiaddr{
		ma.StringCast("/ip4/0.0.0.0/tcp/4001"),
		ma.StringCast("/ip4/0.0.0.0/udp/4001/quic-v1"),
		ma.StringCast("/ip6/::/tcp/4001"),
		ma.StringCast("/ip6/::/udp/4001/quic-v1"),
	}
}

// Daemon is a relay with its own key, on-disk datastore, host and metrics
// server: what kith-rendezvous runs.
type Daemon struct {
	Relay   *Relay
	Host    host.Host
	ds      *PebbleStore
	metrics *http.Server
	// MetricsAddr is the address the metrics server listens on, if any.
	MetricsAddr string
}

// OpenDatastore opens the relay's on-disk datastore: go-ds-pebble (pure
// Go, maintained, atomic batches) with synced writes, so a batch the relay
// acknowledged survives kill -9 and power loss. Group commit keeps that to
// one sync per batch of concurrent operations; batches whose loss is
// harmless (acknowledgements) skip the sync.
func OpenDatastore(dir string) (*PebbleStore, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	// Bloom filters make the point lookups of the hot path (is this share
	// id new? is this item still waiting?) skip tables that cannot hold
	// the key.
	opts := &pebble.Options{}
	opts.Levels[0].FilterPolicy = bloom.FilterPolicy(10)
	// A larger memtable than pebble's 4 MiB: the keys rewritten on every
	// share (a mailbox's next seq, an item's id record, items stored and
	// soon deleted) collapse in memory instead of being flushed and
	// compacted again and again.
	opts.MemTableSize = memTableSize
	d, err := pebbleds.NewDatastore(dir, pebbleds.WithPebbleWriteOptions(pebble.Sync), pebbleds.WithPebbleOpts(opts))
	if err != nil {
		return nil, err
	}
	return &PebbleStore{d}, nil
}

// memTableSize is the relay's pebble memtable size; pebble keeps up to two
// (one being flushed).
const memTableSize = 32 << 20

// PebbleStore is the relay's go-ds-pebble datastore, which can also commit
// a batch without a sync.
type PebbleStore struct {
	*pebbleds.Datastore
}

// UnsyncedBatch returns a batch committed without waiting for a sync.
func (p *PebbleStore) UnsyncedBatch(context.Context) (ds.Batch, error) {
	return &unsyncedBatch{b: p.DB.NewBatch()}, nil
}

// ScanFrom calls f with the keys and values under prefix, in key order,
// from the first key at or after start, until f returns false. The value
// is valid only during the call.
func (p *PebbleStore) ScanFrom(prefix, start []byte, f func(key, value []byte) bool) error {
	upper := append([]byte(nil), prefix...)
	upper[len(upper)-1]++ // prefixes end in '/': the next byte bounds them
	it, err := p.DB.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: upper})
	if err != nil {
		return err
	}
	defer it.Close()
	for ok := it.SeekGE(start); ok; ok = it.Next() {
		v, err := it.ValueAndErr()
		if err != nil {
			return err
		}
		if !f(it.Key(), v) {
			break
		}
	}
	return it.Error()
}

type unsyncedBatch struct{ b *pebble.Batch }

func (u *unsyncedBatch) Put(_ context.Context, k ds.Key, v []byte) error {
	return u.b.Set(k.Bytes(), v, nil)
}
func (u *unsyncedBatch) Delete(_ context.Context, k ds.Key) error { return u.b.Delete(k.Bytes(), nil) }
func (u *unsyncedBatch) Commit(context.Context) error {
	defer u.b.Close()
	return u.b.Commit(pebble.NoSync)
}

// listenFree refuses listen addresses with a fixed port that another
// process already serves. go-libp2p binds its TCP and QUIC sockets with
// SO_REUSEPORT, so a second relay on the same port would start without a
// word and the kernel would hand each new connection to either (users
// then see "peer id mismatch"); a plain bind, without the option, fails
// while another socket holds the port.
func listenFree(addrs []ma.Multiaddr) error {
	for _, a := range addrs {
		network, hostport, err := manet.DialArgs(a)
		if err != nil {
			continue // not an IP address libp2p binds itself
		}
		if _, port, _ := net.SplitHostPort(hostport); port == "0" || port == "" {
			continue
		}
		var closer io.Closer
		switch network {
		case "tcp", "tcp4", "tcp6":
			closer, err = net.Listen(network, hostport)
		case "udp", "udp4", "udp6":
			closer, err = net.ListenPacket(network, hostport)
		default:
			continue
		}
		if err != nil {
			return fmt.Errorf("rendezvous: cannot listen on %s: %w (is another relay, or another program, serving it?)", a, err)
		}
		closer.Close()
	}
	return nil
}

// OpenDaemon starts a relay as DaemonOptions say. Close stops it.
func OpenDaemon(ctx context.Context, o DaemonOptions) (*Daemon, error) {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if len(o.Listen) == 0 {
		o.Listen = DefaultListen()
	}
	if err := listenFree(o.Listen); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(o.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("rendezvous: data directory: %w", err)
	}
	key, created, err := identity.LoadOrCreateKey(filepath.Join(o.DataDir, "key"), nil)
	if err != nil {
		return nil, err
	}
	if created {
		o.Logger.Info("created a new relay identity", "key", filepath.Join(o.DataDir, "key"))
	}
	d := &Daemon{}
	d.ds, err = OpenDatastore(filepath.Join(o.DataDir, "store"))
	if err != nil {
		return nil, fmt.Errorf("rendezvous: datastore: %w", err)
	}
	hopts, err := HostOptions(key, o.Listen, o.Config)
	if err != nil {
		d.ds.Close()
		return nil, err
	}
	d.Host, err = libp2p.New(hopts...)
	if err != nil {
		d.ds.Close()
		return nil, fmt.Errorf("rendezvous: libp2p host: %w", err)
	}
	budget := []any{"memory_mib", o.Config.MemoryBudgetMiB(), "users", o.Config.UsersCarried(), "max_connections", o.Config.MaxConnections}
	if o.Config.UsersCarried() < o.Config.MaxConnections {
		o.Logger.Warn("max_memory_mib carries fewer logged-in users than max_connections; raise it or set it to 0", budget...)
	} else {
		o.Logger.Info("resource budget", budget...)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	d.Relay, err = New(ctx, d.Host, d.ds, WithConfig(o.Config), WithLogger(o.Logger), WithRegisterer(reg))
	if err != nil {
		d.Host.Close()
		d.ds.Close()
		return nil, err
	}
	if o.MetricsAddr != "" {
		ln, err := net.Listen("tcp", o.MetricsAddr)
		if err != nil {
			d.Close()
			return nil, fmt.Errorf("rendezvous: metrics listener: %w", err)
		}
		mux := http.NewServeMux()
		mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
		mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte("ok\n")) })
		mux.HandleFunc("/readyz", func(w http.ResponseWriter, req *http.Request) {
			rd := d.Relay.Ready(req.Context())
			w.Header().Set("Content-Type", "application/json")
			if !rd.Ready {
				w.WriteHeader(http.StatusServiceUnavailable)
			}
			json.NewEncoder(w).Encode(rd)
		})
		if o.Pprof {
			mux.HandleFunc("/debug/pprof/", pprof.Index)
			mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
			mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
			mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
		}
		d.metrics = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
		d.MetricsAddr = ln.Addr().String()
		go func() {
			if err := d.metrics.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				o.Logger.Error("metrics server", "err", err)
			}
		}()
	}
	return d, nil
}

// Addrs returns the relay's full addresses, each ending in /p2p/<id>.
func (d *Daemon) Addrs() []ma.Multiaddr {
	suffix := ma.StringCast("/p2p/" + d.Host.ID().String())
	var out []ma.Multiaddr
	for _, a := range d.Host.Addrs() {
		out = append(out, a.Encapsulate(suffix))
	}
	return out
}

// Close stops the relay gracefully: no new streams, queued writes
// finished, then the host and the datastore closed.
func (d *Daemon) Close() error {
	if d.metrics != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		d.metrics.Shutdown(ctx)
		cancel()
	}
	var errs []error
	if d.Relay != nil {
		errs = append(errs, d.Relay.Close())
	}
	if d.Host != nil {
		errs = append(errs, d.Host.Close())
	}
	if d.ds != nil {
		errs = append(errs, d.ds.Close())
	}
	return errors.Join(errs...)
}
