package daemon

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	ds "github.com/ipfs/go-datastore"
	"github.com/ipfs/go-datastore/query"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/chacha20poly1305"

	"github.com/kithnet/kith/identity"
	"github.com/kithnet/kith/node/book"
)

// A backup is everything a data directory holds that makes the user who
// they are: the identity key, the whole datastore (friends, groups,
// requests, shares, invites, the sealed encryption keys) and the config,
// sealed under a passphrase with Argon2id (identity.DefaultKDF) and
// XChaCha20-Poly1305. kith init --restore makes a data directory of it
// on another machine.

// backupFile is the sealed file's JSON layout; the header is bound to the
// ciphertext as associated data.
type backupFile struct {
	Version    int                `json:"kith_backup"`
	KDF        identity.KDFParams `json:"kdf"`
	Salt       []byte             `json:"salt"`
	Nonce      []byte             `json:"nonce"`
	Ciphertext []byte             `json:"ciphertext"`
}

// backup is what the ciphertext opens to.
type backup struct {
	Key     []byte  `json:"key"` // libp2p-marshalled private key
	Config  Config  `json:"config"`
	Entries []entry `json:"entries"`
}

type entry struct {
	K string `json:"k"`
	V []byte `json:"v"`
}

const backupVersion = 1

// MaxBackup bounds a backup file that is read (a hostile or damaged file
// is refused before it is decrypted).
const MaxBackup = 512 << 20

// Backup errors.
var (
	ErrWrongBackupPassphrase = errors.New("wrong passphrase, or the backup was altered")
	ErrNotABackup            = errors.New("not a Kith backup")
)

func (f *backupFile) ad() []byte {
	return fmt.Appendf(nil, "kith-backup/%d/%d/%d/%d/%x", f.Version, f.KDF.Time, f.KDF.MemoryKiB, f.KDF.Threads, f.Salt)
}

// SealBackup makes a backup of key, cfg and every entry of d, sealed
// under passphrase. The datastore is read as one snapshot (a pebble
// iterator), so a running node's backup is consistent.
func SealBackup(ctx context.Context, key crypto.PrivKey, cfg Config, d ds.Datastore, passphrase []byte) ([]byte, error) {
	return sealBackup(ctx, key, cfg, d, passphrase, identity.DefaultKDF)
}

func sealBackup(ctx context.Context, key crypto.PrivKey, cfg Config, d ds.Datastore, passphrase []byte, kdf identity.KDFParams) ([]byte, error) {
	if len(passphrase) == 0 {
		return nil, book.Kindf(book.ErrBadArgument, "a backup holds your secret key: it needs a passphrase")
	}
	raw, err := crypto.MarshalPrivateKey(key)
	if err != nil {
		return nil, err
	}
	b := backup{Key: raw, Config: cfg}
	res, err := d.Query(ctx, query.Query{})
	if err != nil {
		return nil, fmt.Errorf("reading the datastore: %w", err)
	}
	defer res.Close()
	for r := range res.Next() {
		if r.Error != nil {
			return nil, fmt.Errorf("reading the datastore: %w", r.Error)
		}
		b.Entries = append(b.Entries, entry{K: r.Key, V: r.Value})
	}
	plain, err := json.Marshal(b)
	if err != nil {
		return nil, err
	}
	f := backupFile{Version: backupVersion, KDF: kdf, Salt: make([]byte, 16), Nonce: make([]byte, chacha20poly1305.NonceSizeX)}
	if _, err := rand.Read(f.Salt); err != nil {
		return nil, err
	}
	if _, err := rand.Read(f.Nonce); err != nil {
		return nil, err
	}
	aead, err := chacha20poly1305.NewX(argon2.IDKey(passphrase, f.Salt, f.KDF.Time, f.KDF.MemoryKiB, f.KDF.Threads, chacha20poly1305.KeySize))
	if err != nil {
		return nil, err
	}
	f.Ciphertext = aead.Seal(nil, f.Nonce, plain, f.ad())
	return json.Marshal(f)
}

// openBackup opens a sealed backup.
func openBackup(data, passphrase []byte) (*backup, error) {
	if len(data) > MaxBackup {
		return nil, fmt.Errorf("%w: %d bytes", ErrNotABackup, len(data))
	}
	var f backupFile
	if err := json.Unmarshal(data, &f); err != nil || f.Version == 0 {
		return nil, ErrNotABackup
	}
	if f.Version != backupVersion {
		return nil, fmt.Errorf("%w: version %d (this kith reads %d)", ErrNotABackup, f.Version, backupVersion)
	}
	// The work a file asks for is bounded as a key file's is.
	if err := f.KDF.Check(); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrNotABackup, err)
	}
	if len(f.Salt) < 16 || len(f.Nonce) != chacha20poly1305.NonceSizeX {
		return nil, fmt.Errorf("%w: salt or nonce has the wrong size", ErrNotABackup)
	}
	aead, err := chacha20poly1305.NewX(argon2.IDKey(passphrase, f.Salt, f.KDF.Time, f.KDF.MemoryKiB, f.KDF.Threads, chacha20poly1305.KeySize))
	if err != nil {
		return nil, err
	}
	plain, err := aead.Open(nil, f.Nonce, f.Ciphertext, f.ad())
	if err != nil {
		return nil, ErrWrongBackupPassphrase
	}
	var b backup
	if err := json.Unmarshal(plain, &b); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrNotABackup, err)
	}
	return &b, nil
}

// Backup writes a sealed backup of the data directory dir, whose daemon
// is not running, to out: keyPass opens the key file, passphrase seals
// the backup.
func Backup(ctx context.Context, dir, out string, keyPass, passphrase []byte) error {
	key, err := identity.LoadKey(filepath.Join(dir, keyFile), keyPass)
	if err != nil {
		return err
	}
	cfg, err := ReadConfig(dir)
	if err != nil {
		return err
	}
	d, err := OpenDatastore(filepath.Join(dir, storeDir))
	if err != nil {
		return fmt.Errorf("opening the datastore (is kith up running? then it makes the backup): %w", err)
	}
	defer d.Close()
	data, err := SealBackup(ctx, key, cfg, d, passphrase)
	if err != nil {
		return err
	}
	return WriteBackup(out, data)
}

// WriteBackup writes a sealed backup to path, mode 0600, atomically: a
// backup cut short by a crash is never left in its place.
func WriteBackup(path string, data []byte) error { return writeFileAtomic(path, data, 0o600) }

// Restore makes the data directory dir from a sealed backup opened with
// passphrase: the key (encrypted under keyPass, unless empty), the
// datastore, the config. dir must not hold an identity yet.
func Restore(ctx context.Context, dir string, data, passphrase, keyPass []byte) (peer.ID, error) {
	if _, err := os.Stat(filepath.Join(dir, keyFile)); err == nil {
		return "", book.Kindf(book.ErrBadArgument, "%s already holds an identity; restore into a new --data directory", dir)
	}
	b, err := openBackup(data, passphrase)
	if err != nil {
		return "", book.Kindf(book.ErrBadArgument, "the backup does not open: %v", err)
	}
	key, err := crypto.UnmarshalPrivateKey(b.Key)
	if err != nil {
		return "", book.Kindf(book.ErrBadArgument, "the backup's key: %v", err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", err
	}
	d, err := OpenDatastore(filepath.Join(dir, storeDir))
	if err != nil {
		return "", err
	}
	batch, err := d.Batch(ctx)
	if err != nil {
		d.Close()
		return "", err
	}
	for _, e := range b.Entries {
		if err := batch.Put(ctx, ds.RawKey(e.K), e.V); err != nil {
			d.Close()
			return "", err
		}
	}
	if err := batch.Commit(ctx); err != nil {
		d.Close()
		return "", err
	}
	if err := d.Close(); err != nil {
		return "", err
	}
	if err := WriteConfig(dir, b.Config); err != nil {
		return "", err
	}
	if _, err := ensureToken(dir); err != nil {
		return "", err
	}
	// The key last: a restore cut short leaves no identity, and can be
	// run again.
	if err := identity.SaveKey(filepath.Join(dir, keyFile), key, keyPass); err != nil {
		return "", err
	}
	return peer.IDFromPrivateKey(key)
}

// ChangePassphrase re-encrypts dir's key file: old opens it (empty if it
// is not encrypted), next seals it (empty: stored unencrypted).
func ChangePassphrase(dir string, old, next []byte) error {
	path := filepath.Join(dir, keyFile)
	key, err := identity.LoadKey(path, old)
	if err != nil {
		return err
	}
	return identity.SaveKey(path, key, next)
}

// KeyEncrypted reports whether dir's key file needs a passphrase.
func KeyEncrypted(dir string) bool {
	b, err := os.ReadFile(filepath.Join(dir, keyFile))
	return err == nil && identity.IsEncryptedKeyFile(b)
}
