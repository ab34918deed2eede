package identity

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// fastKDF keeps tests quick; the file format and code path are the same.
var fastKDF = KDFParams{Time: 1, MemoryKiB: 64, Threads: 1}

func TestKeyFilePlain(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "sub", "key")
	k, created, err := LoadOrCreateKey(path, nil)
	if err != nil || !created {
		t.Fatalf("create: %v %v", created, err)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %04o, want 0600", st.Mode().Perm())
	}
	k2, created, err := LoadOrCreateKey(path, nil)
	if err != nil || created {
		t.Fatalf("reload: %v %v", created, err)
	}
	if !k.Equals(k2) {
		t.Fatal("reloaded a different key")
	}
	os.Chmod(path, 0o644)
	if _, err := LoadKey(path, nil); !errors.Is(err, ErrKeyFilePermissions) {
		t.Fatalf("world-readable key loaded: %v", err)
	}
	if _, err := LoadKey(filepath.Join(dir, "nope"), nil); err == nil {
		t.Fatal("missing key loaded")
	}
}

func TestKeyFileEncrypted(t *testing.T) {
	k, _ := GenerateKey()
	data, err := EncodeKeyFile(k, []byte("correct horse"), fastKDF)
	if err != nil {
		t.Fatal(err)
	}
	if !IsEncryptedKeyFile(data) {
		t.Fatal("not reported as encrypted")
	}
	got, err := DecodeKeyFile(data, []byte("correct horse"))
	if err != nil || !got.Equals(k) {
		t.Fatalf("decrypt: %v", err)
	}
	var kf keyFile
	json.Unmarshal(data, &kf)
	edited := func(f func(*keyFile)) []byte {
		c := kf
		kdf := *kf.KDF
		c.KDF = &kdf
		f(&c)
		b, _ := json.Marshal(c)
		return b
	}
	tests := []struct {
		name string
		data []byte
		pass string
		want error
	}{
		{"wrong passphrase", data, "battery staple", ErrWrongPassphrase},
		{"no passphrase", data, "", ErrPassphraseRequired},
		{"kdf parameters edited", edited(func(c *keyFile) { c.KDF.Time = 2 }), "correct horse", ErrWrongPassphrase},
		{"salt edited", edited(func(c *keyFile) { c.Salt = "AAAAAAAAAAAAAAAAAAAAAA==" }), "correct horse", ErrWrongPassphrase},
		{"ciphertext truncated", edited(func(c *keyFile) { c.Ciphertext = c.Ciphertext[:20] }), "correct horse", ErrWrongPassphrase},
		{"ciphertext not base64", edited(func(c *keyFile) { c.Ciphertext = "%%%" }), "correct horse", ErrCorruptKeyFile},
		{"hostile kdf memory", edited(func(c *keyFile) { c.KDF.MemoryKiB = 1 << 30 }), "correct horse", ErrKeyFileParamsTooBig},
		{"hostile kdf time", edited(func(c *keyFile) { c.KDF.Time = 1 << 20 }), "correct horse", ErrKeyFileParamsTooBig},
		{"zero threads", edited(func(c *keyFile) { c.KDF.Threads = 0 }), "correct horse", ErrCorruptKeyFile},
		{"unknown encryption", edited(func(c *keyFile) { c.Encryption = "rot13" }), "correct horse", ErrUnsupportedKeyFile},
		{"future version", edited(func(c *keyFile) { c.Version = 2 }), "correct horse", ErrUnsupportedKeyFile},
		{"not json", []byte("-----BEGIN PRIVATE KEY-----"), "", ErrCorruptKeyFile},
		{"empty", nil, "", ErrCorruptKeyFile},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := DecodeKeyFile(tt.data, []byte(tt.pass))
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestSaveKeyEncryptedDefaultKDF(t *testing.T) {
	if testing.Short() {
		t.Skip("Argon2id with 64 MiB")
	}
	path := filepath.Join(t.TempDir(), "key")
	k, _ := GenerateKey()
	if err := SaveKey(path, k, []byte("pw")); err != nil {
		t.Fatal(err)
	}
	got, err := LoadKey(path, []byte("pw"))
	if err != nil || !got.Equals(k) {
		t.Fatalf("load: %v", err)
	}
	if _, err := LoadKey(path, []byte("PW")); !errors.Is(err, ErrWrongPassphrase) {
		t.Fatalf("wrong passphrase: %v", err)
	}
}
