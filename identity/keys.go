package identity

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/libp2p/go-libp2p/core/crypto"
	cryptopb "github.com/libp2p/go-libp2p/core/crypto/pb"
	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/chacha20poly1305"
)

// Key file errors. Each is returned wrapped with the file's path.
var (
	ErrNotEd25519          = errors.New("identity: not an Ed25519 key")
	ErrPassphraseRequired  = errors.New("identity: the key file is encrypted; a passphrase is required")
	ErrWrongPassphrase     = errors.New("identity: wrong passphrase (or the key file was altered)")
	ErrCorruptKeyFile      = errors.New("identity: the key file is corrupt")
	ErrKeyFilePermissions  = errors.New("identity: the key file is readable by other users")
	ErrUnsupportedKeyFile  = errors.New("identity: unsupported key file version or encryption")
	ErrKeyFileParamsTooBig = errors.New("identity: the key file asks for more work than allowed")
)

// KDFParams are the Argon2id parameters of an encrypted key file.
type KDFParams struct {
	Time      uint32 `json:"time"`
	MemoryKiB uint32 `json:"memory_kib"`
	Threads   uint8  `json:"threads"`
}

// DefaultKDF follows RFC 9106's second recommended option (64 MiB, t=3).
var DefaultKDF = KDFParams{Time: 3, MemoryKiB: 64 << 10, Threads: 4}

// Limits on parameters read from a key file, so that a hostile file cannot
// make LoadKey allocate gigabytes or spin for minutes.
const (
	maxKDFTime      = 16
	maxKDFMemoryKiB = 1 << 20 // 1 GiB
	maxKeyFileSize  = 4 << 10
)

const (
	keyFileVersion  = 1
	encNone         = "none"
	encArgon2XChaCh = "argon2id+xchacha20poly1305"
)

// keyFile is the JSON layout of a key file. Unencrypted files carry the
// libp2p-marshalled private key in Key; encrypted ones carry it sealed in
// Ciphertext, with the header fields bound as associated data.
type keyFile struct {
	Version    int        `json:"kith_key"`
	Encryption string     `json:"encryption"`
	KDF        *KDFParams `json:"kdf,omitempty"`
	Salt       string     `json:"salt,omitempty"`
	Nonce      string     `json:"nonce,omitempty"`
	Key        string     `json:"key,omitempty"`
	Ciphertext string     `json:"ciphertext,omitempty"`
}

// GenerateKey makes a new Ed25519 user key.
func GenerateKey() (crypto.PrivKey, error) {
	k, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("identity: generate key: %w", err)
	}
	return k, nil
}

// EncodeKeyFile returns the key file contents for key. With a non-empty
// passphrase the key is encrypted with XChaCha20-Poly1305 under a key derived
// by Argon2id with kdf (DefaultKDF when zero).
func EncodeKeyFile(key crypto.PrivKey, passphrase []byte, kdf KDFParams) ([]byte, error) {
	if key == nil || key.Type() != cryptopb.KeyType_Ed25519 {
		return nil, ErrNotEd25519
	}
	raw, err := crypto.MarshalPrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("identity: marshal key: %w", err)
	}
	kf := keyFile{Version: keyFileVersion, Encryption: encNone}
	if len(passphrase) == 0 {
		kf.Key = base64.StdEncoding.EncodeToString(raw)
		return json.MarshalIndent(kf, "", "  ")
	}
	if kdf == (KDFParams{}) {
		kdf = DefaultKDF
	}
	if err := kdf.check(); err != nil {
		return nil, err
	}
	salt := make([]byte, 16)
	nonce := make([]byte, chacha20poly1305.NonceSizeX)
	if _, err := rand.Read(salt); err != nil {
		return nil, err
	}
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	kf.Encryption = encArgon2XChaCh
	kf.KDF = &kdf
	kf.Salt = base64.StdEncoding.EncodeToString(salt)
	kf.Nonce = base64.StdEncoding.EncodeToString(nonce)
	aead, err := chacha20poly1305.NewX(argon2.IDKey(passphrase, salt, kdf.Time, kdf.MemoryKiB, kdf.Threads, chacha20poly1305.KeySize))
	if err != nil {
		return nil, err
	}
	kf.Ciphertext = base64.StdEncoding.EncodeToString(aead.Seal(nil, nonce, raw, kf.associatedData()))
	return json.MarshalIndent(kf, "", "  ")
}

// Check reports whether p are parameters a reader accepts: valid, and
// within the work a hostile file may ask for.
func (p KDFParams) Check() error { return p.check() }

func (p KDFParams) check() error {
	if p.Time == 0 || p.MemoryKiB < 8*uint32(p.Threads) || p.Threads == 0 {
		return fmt.Errorf("%w: kdf parameters %+v are invalid", ErrCorruptKeyFile, p)
	}
	if p.Time > maxKDFTime || p.MemoryKiB > maxKDFMemoryKiB {
		return fmt.Errorf("%w: time %d (max %d), memory %d KiB (max %d)", ErrKeyFileParamsTooBig,
			p.Time, maxKDFTime, p.MemoryKiB, maxKDFMemoryKiB)
	}
	return nil
}

// associatedData binds every header field to the ciphertext, so that editing
// the KDF parameters or salt makes decryption fail instead of misbehave.
func (kf *keyFile) associatedData() []byte {
	return fmt.Appendf(nil, "kith-key/%d/%s/%d/%d/%d/%s", kf.Version, kf.Encryption,
		kf.KDF.Time, kf.KDF.MemoryKiB, kf.KDF.Threads, kf.Salt)
}

// IsEncryptedKeyFile reports whether data is a key file that needs a
// passphrase. It returns false for anything it cannot parse.
func IsEncryptedKeyFile(data []byte) bool {
	var kf keyFile
	return json.Unmarshal(data, &kf) == nil && kf.Encryption == encArgon2XChaCh
}

// DecodeKeyFile parses a key file and returns its Ed25519 key. It never
// panics on hostile input: every failure is one of the key file errors.
func DecodeKeyFile(data []byte, passphrase []byte) (crypto.PrivKey, error) {
	if len(data) > maxKeyFileSize {
		return nil, fmt.Errorf("%w: %d bytes", ErrCorruptKeyFile, len(data))
	}
	var kf keyFile
	if err := json.Unmarshal(data, &kf); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrCorruptKeyFile, err)
	}
	if kf.Version != keyFileVersion {
		return nil, fmt.Errorf("%w: version %d", ErrUnsupportedKeyFile, kf.Version)
	}
	var raw []byte
	switch kf.Encryption {
	case encNone:
		b, err := base64.StdEncoding.DecodeString(kf.Key)
		if err != nil {
			return nil, fmt.Errorf("%w: key: %w", ErrCorruptKeyFile, err)
		}
		raw = b
	case encArgon2XChaCh:
		if len(passphrase) == 0 {
			return nil, ErrPassphraseRequired
		}
		if kf.KDF == nil {
			return nil, fmt.Errorf("%w: no kdf parameters", ErrCorruptKeyFile)
		}
		if err := kf.KDF.check(); err != nil {
			return nil, err
		}
		salt, err1 := base64.StdEncoding.DecodeString(kf.Salt)
		nonce, err2 := base64.StdEncoding.DecodeString(kf.Nonce)
		ct, err3 := base64.StdEncoding.DecodeString(kf.Ciphertext)
		if err := errors.Join(err1, err2, err3); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrCorruptKeyFile, err)
		}
		if len(salt) < 16 || len(nonce) != chacha20poly1305.NonceSizeX {
			return nil, fmt.Errorf("%w: salt or nonce has the wrong size", ErrCorruptKeyFile)
		}
		aead, err := chacha20poly1305.NewX(argon2.IDKey(passphrase, salt, kf.KDF.Time, kf.KDF.MemoryKiB, kf.KDF.Threads, chacha20poly1305.KeySize))
		if err != nil {
			return nil, err
		}
		raw, err = aead.Open(nil, nonce, ct, kf.associatedData())
		if err != nil {
			return nil, ErrWrongPassphrase
		}
	default:
		return nil, fmt.Errorf("%w: encryption %q", ErrUnsupportedKeyFile, kf.Encryption)
	}
	key, err := crypto.UnmarshalPrivateKey(raw)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrCorruptKeyFile, err)
	}
	if key.Type() != cryptopb.KeyType_Ed25519 {
		return nil, ErrNotEd25519
	}
	return key, nil
}

// SaveKey writes key to path with mode 0600, atomically: it writes a
// temporary file in the same directory, syncs it, renames it over path and
// syncs the directory. An empty passphrase stores the key unencrypted.
func SaveKey(path string, key crypto.PrivKey, passphrase []byte) error {
	data, err := EncodeKeyFile(key, passphrase, KDFParams{})
	if err != nil {
		return err
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("identity: save key: %w", err)
	}
	tmp, err := os.CreateTemp(dir, ".key-*")
	if err != nil {
		return fmt.Errorf("identity: save key: %w", err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return fmt.Errorf("identity: save key: %w", err)
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("identity: save key: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("identity: save key: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("identity: save key: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("identity: save key: %w", err)
	}
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

// LoadKey reads the key at path. Like ssh, it refuses a key file that
// other users can read.
func LoadKey(path string, passphrase []byte) (crypto.PrivKey, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("identity: load key: %w", err)
	}
	if st.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("%w: %s has mode %04o; run chmod 600 %s", ErrKeyFilePermissions, path, st.Mode().Perm(), path)
	}
	if st.Size() > maxKeyFileSize {
		return nil, fmt.Errorf("%w: %s is %d bytes", ErrCorruptKeyFile, path, st.Size())
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("identity: load key: %w", err)
	}
	key, err := DecodeKeyFile(data, passphrase)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return key, nil
}

// LoadOrCreateKey loads the key at path, or creates and saves a new one if
// the file does not exist. It reports whether it created the key.
func LoadOrCreateKey(path string, passphrase []byte) (crypto.PrivKey, bool, error) {
	key, err := LoadKey(path, passphrase)
	if err == nil {
		return key, false, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, false, err
	}
	key, err = GenerateKey()
	if err != nil {
		return nil, false, err
	}
	if err := SaveKey(path, key, passphrase); err != nil {
		return nil, false, err
	}
	return key, true, nil
}
