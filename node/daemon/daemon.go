package daemon

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/cockroachdb/pebble/v2"
	pebbleds "github.com/ipfs/go-ds-pebble"
	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/kithnet/kith/identity"
	"github.com/kithnet/kith/node"

	"github.com/kithnet/kith/node/api"
	"github.com/kithnet/kith/node/book"
	"github.com/kithnet/kith/node/client"
)

// The data directory of a user (default ~/.kith):
//
//	key         the identity key (mode 0600; encrypted when KITH_PASSPHRASE is set)
//	store/      the datastore (go-ds-pebble, synced writes)
//	config.json rendezvous and listen addresses (written by init and up)
//	api-token   the local API token (mode 0600)
//	api.json    the running daemon's API address (removed when it stops)
const (
	keyFile    = "key"
	storeDir   = "store"
	configFile = "config.json"
)

// PassphraseEnv names the environment variable holding the key file's
// passphrase, if the key is encrypted.
const PassphraseEnv = "KITH_PASSPHRASE"

// Config is what the data directory remembers between runs.
type Config struct {
	Rendezvous []string `json:"rendezvous"`
	Listen     []string `json:"listen"`
	API        string   `json:"api"`
	// Reachability is how the node expects to be reached: "nat" (at home
	// behind a router, the default: a circuit reservation at the
	// rendezvous nodes, hole punching), "public" or "auto" (AutoNAT).
	Reachability string `json:"reachability,omitempty"`
	// ProfileRefresh is how often the node asks for its friends' newest
	// profiles (their names, who may share them, their home relays), as
	// a Go duration: "1h" when empty.
	ProfileRefresh string `json:"profile_refresh,omitempty"`
}

// ReadConfig reads the data directory's config (defaults when absent).
func ReadConfig(dir string) (Config, error) {
	cfg := Config{Listen: DefaultListen(), API: "127.0.0.1:0"}
	b, err := os.ReadFile(filepath.Join(dir, configFile))
	if errors.Is(err, os.ErrNotExist) {
		return cfg, nil
	}
	if err != nil {
		return cfg, err
	}
	if err := json.Unmarshal(b, &cfg); err != nil {
		return cfg, fmt.Errorf("%s: %w", filepath.Join(dir, configFile), err)
	}
	return cfg, nil
}

// WriteConfig saves the data directory's config.
func WriteConfig(dir string, cfg Config) error {
	b, _ := json.MarshalIndent(cfg, "", "  ")
	return writeFileAtomic(filepath.Join(dir, configFile), b, 0o600)
}

// DefaultListen are the listen addresses when none are configured.
func DefaultListen() []string {
	return []string{"/ip4/0.0.0.0/tcp/0", "/ip4/0.0.0.0/udp/0/quic-v1", "/ip6/::/tcp/0", "/ip6/::/udp/0/quic-v1"}
}

func writeFileAtomic(path string, data []byte, mode os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// OpenDatastore opens a node's on-disk datastore: go-ds-pebble with synced
// writes, so what the node acknowledged to a relay survives a crash.
func OpenDatastore(dir string) (*pebbleds.Datastore, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	return pebbleds.NewDatastore(dir, pebbleds.WithPebbleWriteOptions(pebble.Sync))
}

func passphrase() []byte { return []byte(os.Getenv(PassphraseEnv)) }

// Init creates a data directory: a new identity, the user's name, and the
// given rendezvous nodes. It refuses to overwrite an existing identity.
func Init(dir, name string, rendezvous []string) (peer.ID, error) {
	if err := identity.ValidateName(name); err != nil {
		return "", book.Kindf(book.ErrBadArgument, "%v", err)
	}
	for _, a := range rendezvous {
		if _, err := book.ParseRendezvous([]string{a}); err != nil {
			return "", book.Kindf(book.ErrBadArgument, "%q is not a rendezvous node's address: it must be a whole multiaddr ending in /p2p/<peer id>, as the node prints them when it starts", a)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, keyFile)); err == nil {
		return "", fmt.Errorf("%s already holds an identity; use another --data directory", dir)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", err
	}
	key, err := identity.GenerateKey()
	if err != nil {
		return "", err
	}
	if err := identity.SaveKey(filepath.Join(dir, keyFile), key, passphrase()); err != nil {
		return "", err
	}
	d, err := OpenDatastore(filepath.Join(dir, storeDir))
	if err != nil {
		return "", err
	}
	defer d.Close()
	b, err := book.NewBook(key, name)
	if err != nil {
		return "", err
	}
	for _, m := range b.SaveSettings() {
		if err := d.Put(context.Background(), m.Key, m.Value); err != nil {
			return "", err
		}
	}
	cfg, _ := ReadConfig(dir)
	if len(rendezvous) > 0 {
		cfg.Rendezvous = rendezvous
	}
	if err := WriteConfig(dir, cfg); err != nil {
		return "", err
	}
	if _, err := ensureToken(dir); err != nil {
		return "", err
	}
	return b.Me(), nil
}

func ensureToken(dir string) (string, error) {
	path := filepath.Join(dir, client.TokenFile)
	if b, err := os.ReadFile(path); err == nil && len(b) >= 32 {
		return string(b), nil
	}
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return "", err
	}
	tok := hex.EncodeToString(raw)
	return tok, writeFileAtomic(path, []byte(tok), 0o600)
}

// UpOptions start a daemon.
type UpOptions struct {
	DataDir    string
	Rendezvous []string // overrides (and is saved to) the config when set
	Listen     []string // likewise
	API        string   // likewise: HOST:PORT of the local API
	// Reachability, if set, replaces the config's (nat, public, auto).
	Reachability string
	Logger       *slog.Logger
	// NoUI turns the web interface off (the API stays).
	NoUI bool
	// Passphrase opens an encrypted key file; nil: KITH_PASSPHRASE.
	Passphrase []byte
}

// Daemon is a running personal node: key, datastore, host, node and local
// API, as `kith up` runs it.
type Daemon struct {
	Node  *node.Node
	Host  host.Host
	URL   string // the local API and web interface
	Token string
	dir   string
	ds    *pebbleds.Datastore
	srv   *http.Server
}

// Up starts the daemon of a data directory.
func Up(ctx context.Context, o UpOptions) (*Daemon, error) {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Passphrase == nil {
		o.Passphrase = passphrase()
	}
	key, err := identity.LoadKey(filepath.Join(o.DataDir, keyFile), o.Passphrase)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%s has no identity: run kith init --name NAME --data %s first", o.DataDir, o.DataDir)
	}
	if err != nil {
		return nil, err
	}
	if info, err := client.ReadInfo(o.DataDir); err == nil && processAlive(info.PID) {
		// The pid may have been reused: only a daemon that answers counts.
		if c, err := client.NewClient(o.DataDir); err == nil {
			cctx, cancel := context.WithTimeout(ctx, time.Second)
			_, err = c.Status(cctx)
			cancel()
			if err == nil {
				return nil, fmt.Errorf("a kith daemon (pid %d) is already running on %s at %s", info.PID, o.DataDir, info.URL)
			}
		}
	}
	cfg, err := ReadConfig(o.DataDir)
	if err != nil {
		return nil, err
	}
	if len(o.Rendezvous) > 0 {
		cfg.Rendezvous = o.Rendezvous
	}
	if len(o.Listen) > 0 {
		cfg.Listen = o.Listen
	}
	if o.API != "" {
		cfg.API = o.API
	}
	if o.Reachability != "" {
		cfg.Reachability = o.Reachability
	}
	if err := WriteConfig(o.DataDir, cfg); err != nil {
		return nil, err
	}
	relays, err := node.ParseRendezvous(cfg.Rendezvous)
	if err != nil {
		return nil, err
	}
	listen := book.ParseAddrs(cfg.Listen)
	if len(listen) != len(cfg.Listen) {
		return nil, book.Kindf(book.ErrBadArgument, "a listen address is not a multiaddr: %v", cfg.Listen)
	}
	token, err := ensureToken(o.DataDir)
	if err != nil {
		return nil, err
	}
	d := &Daemon{dir: o.DataDir, Token: token}
	if d.ds, err = OpenDatastore(filepath.Join(o.DataDir, storeDir)); err != nil {
		return nil, fmt.Errorf("opening the datastore: %w", err)
	}
	reach, err := node.ParseReachability(cfg.Reachability)
	if err != nil {
		d.ds.Close()
		return nil, err
	}
	nodeOpts := []node.Option{node.WithRendezvous(relays...), node.WithLogger(o.Logger)}
	if cfg.ProfileRefresh != "" {
		every, err := time.ParseDuration(cfg.ProfileRefresh)
		if err != nil || every < time.Second {
			d.ds.Close()
			return nil, book.Kindf(book.ErrBadArgument, "profile_refresh %q in config.json: a duration of at least 1s, like 1h or 10m", cfg.ProfileRefresh)
		}
		nodeOpts = append(nodeOpts, node.WithProfileRefresh(every))
	}
	if d.Host, err = libp2p.New(node.HostOptions(key, listen, relays, reach)...); err != nil {
		d.ds.Close()
		return nil, fmt.Errorf("starting libp2p: %w", err)
	}
	if d.Node, err = node.New(ctx, d.Host, d.ds, key, nodeOpts...); err != nil {
		d.Host.Close()
		d.ds.Close()
		return nil, err
	}
	ln, err := net.Listen("tcp", cfg.API)
	if err != nil {
		d.Close()
		return nil, fmt.Errorf("the local API cannot listen on %s (is another kith up, or another program, using it? choose another with kith up --api 127.0.0.1:PORT): %w", cfg.API, err)
	}
	tcp, ok := ln.Addr().(*net.TCPAddr)
	if !ok || !tcp.IP.IsLoopback() {
		ln.Close()
		d.Close()
		return nil, book.Kindf(book.ErrBadArgument, "the local API must listen on a loopback address, not %s", cfg.API)
	}
	if _, port, _ := net.SplitHostPort(cfg.API); port == "0" {
		// The port is chosen once and kept: an open tab, a bookmark and
		// the page's reconnection find the node at the same address
		// after every restart.
		cfg.API = ln.Addr().String()
		if err := WriteConfig(o.DataDir, cfg); err != nil {
			ln.Close()
			d.Close()
			return nil, err
		}
	}
	d.URL = "http://" + ln.Addr().String() + "/"
	mux := http.NewServeMux()
	apiHandler := api.NewAPI(d.Node, token)
	apiHandler.SetBackup(func(ctx context.Context, pass []byte) ([]byte, error) {
		cfg, err := ReadConfig(o.DataDir)
		if err != nil {
			return nil, err
		}
		return SealBackup(ctx, key, cfg, d.ds, pass)
	})
	mux.Handle("/api/", apiHandler)
	if !o.NoUI {
		mux.Handle("/", api.NewUI(token))
	}
	d.srv = &http.Server{Handler: api.LocalHostOnly(tcp, mux), ReadHeaderTimeout: 10 * time.Second}
	d.srv.RegisterOnShutdown(apiHandler.Close) // event streams end: the shutdown need not wait for them
	go d.srv.Serve(ln)
	b, _ := json.Marshal(client.Info{URL: d.URL, PID: os.Getpid()})
	if err := writeFileAtomic(filepath.Join(o.DataDir, client.InfoFile), b, 0o600); err != nil {
		d.Close()
		return nil, err
	}
	return d, nil
}

// Close stops the daemon: API, node, host, datastore.
func (d *Daemon) Close() error {
	if d.srv != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		if d.srv.Shutdown(ctx) != nil {
			d.srv.Close() // what did not finish in time is cut
		}
		cancel()
		os.Remove(filepath.Join(d.dir, client.InfoFile))
	}
	var errs []error
	if d.Node != nil {
		errs = append(errs, d.Node.Close())
	}
	if d.Host != nil {
		errs = append(errs, d.Host.Close())
	}
	if d.ds != nil {
		errs = append(errs, d.ds.Close())
	}
	return errors.Join(errs...)
}

// LoginURL returns the link that logs a browser in to the web interface.
func (d *Daemon) LoginURL() string {
	return strings.TrimSuffix(d.URL, "/") + api.LoginPath + "?token=" + d.Token
}

// LoginURL returns the web interface's login link of the daemon running on
// dataDir.
func LoginURL(dataDir string) (string, error) {
	info, err := client.ReadInfo(dataDir)
	if err != nil {
		return "", fmt.Errorf("%w (start it with: kith up --data %s)", client.ErrDaemonNotRunning, dataDir)
	}
	tok, err := os.ReadFile(filepath.Join(dataDir, client.TokenFile))
	if err != nil {
		return "", err
	}
	return strings.TrimSuffix(info.URL, "/") + api.LoginPath + "?token=" + strings.TrimSpace(string(tok)), nil
}
