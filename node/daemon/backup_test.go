package daemon

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"testing"

	ds "github.com/ipfs/go-datastore"

	"github.com/kithnet/kith/identity"
)

func sealedSample(t testing.TB) ([]byte, ds.Datastore) {
	t.Helper()
	key, _ := identity.GenerateKey()
	d := ds.NewMapDatastore()
	d.Put(context.Background(), ds.NewKey("/kith/node/settings"), []byte(`{"name":"Alice"}`))
	data, err := SealBackup(context.Background(), key, Config{Rendezvous: []string{"/ip4/127.0.0.1/tcp/1/p2p/x"}}, d, []byte("pass"))
	if err != nil {
		t.Fatal(err)
	}
	return data, d
}

func TestBackupOpensOnlyWithItsPassphrase(t *testing.T) {
	data, _ := sealedSample(t)
	b, err := openBackup(data, []byte("pass"))
	if err != nil {
		t.Fatal(err)
	}
	if len(b.Entries) != 1 || b.Entries[0].K != "/kith/node/settings" || len(b.Config.Rendezvous) != 1 {
		t.Fatalf("opened %+v", b)
	}
	if _, err := openBackup(data, []byte("Pass")); !errors.Is(err, ErrWrongBackupPassphrase) {
		t.Errorf("the wrong passphrase: %v", err)
	}
	if bytes.Contains(data, []byte("Alice")) {
		t.Error("the backup shows what it holds")
	}
	var f backupFile
	json.Unmarshal(data, &f)
	for name, edit := range map[string]func(*backupFile){
		"ciphertext": func(f *backupFile) { f.Ciphertext[0] ^= 1 },
		"salt":       func(f *backupFile) { f.Salt[0] ^= 1 },
		"kdf":        func(f *backupFile) { f.KDF.Time++ },
		"huge kdf":   func(f *backupFile) { f.KDF.MemoryKiB = 1 << 30 },
		"version":    func(f *backupFile) { f.Version = 9 },
	} {
		g := f
		g.Ciphertext, g.Salt = bytes.Clone(f.Ciphertext), bytes.Clone(f.Salt)
		edit(&g)
		raw, _ := json.Marshal(g)
		if _, err := openBackup(raw, []byte("pass")); err == nil {
			t.Errorf("a backup with its %s altered opened", name)
		}
	}
	if _, err := openBackup(make([]byte, MaxBackup+1), nil); !errors.Is(err, ErrNotABackup) {
		t.Errorf("an oversized file: %v", err)
	}
}

// FuzzOpenBackup: whatever file is given to kith init --restore, opening
// it fails with an error or opens a backup, and never panics.
func FuzzOpenBackup(f *testing.F) {
	data, _ := sealedSample(f)
	f.Add(data)
	key, _ := identity.GenerateKey()
	cheap, err := sealBackup(context.Background(), key, Config{}, ds.NewMapDatastore(), []byte("pass"), identity.KDFParams{Time: 1, MemoryKiB: 64, Threads: 1})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(cheap)
	f.Add([]byte(`{"kith_backup":1,"kdf":{"time":1,"memory_kib":8,"threads":1},"salt":"AAAAAAAAAAAAAAAAAAAAAA==","nonce":"","ciphertext":""}`))
	f.Add([]byte("{}"))
	f.Fuzz(func(t *testing.T, raw []byte) {
		// Inputs that ask for real Argon2 work are decoded only as far as
		// the header: the fuzzer explores the decoder, not the KDF.
		var h backupFile
		if json.Unmarshal(raw, &h) == nil && (h.KDF.MemoryKiB > 64 || h.KDF.Time > 1) {
			return
		}
		openBackup(raw, []byte("pass"))
	})
}
