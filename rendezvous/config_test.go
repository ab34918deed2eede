package rendezvous

import (
	"os"
	"reflect"
	"strings"
	"testing"
)

func TestConfigValidate(t *testing.T) {
	cases := []struct {
		name string
		edit func(*Config)
		want string // a part of the error, or "" for valid
	}{
		{"defaults", func(*Config) {}, ""},
		{"explicit memory", func(c *Config) { c.MaxMemoryMiB = 64 }, ""},
		{"memory too small", func(c *Config) { c.MaxMemoryMiB = 63 }, "max_memory_mib"},
		{"negative memory", func(c *Config) { c.MaxMemoryMiB = -1 }, "max_memory_mib"},
		{"too few connections", func(c *Config) { c.MaxConnections = 15 }, "max_connections"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg := DefaultConfig()
			c.edit(&cfg)
			err := cfg.Validate()
			switch {
			case c.want == "" && err != nil:
				t.Fatalf("valid config refused: %v", err)
			case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
				t.Fatalf("error %v, want one naming %q", err, c.want)
			}
		})
	}
}

// TestMemoryBudget checks the sizing that caps logged-in users: measured,
// a relay with 1,024 MiB carried about 3,900 users and reset the rest.
func TestMemoryBudget(t *testing.T) {
	cases := []struct {
		conns   int
		mem     int64
		wantMiB int64
		users   int
	}{
		{20000, 0, 512 + 20000*272/1024, 20000},
		{1000, 0, 512 + 1000*272/1024, 1000},
		{20000, 1024, 1024, 1024 * 1024 / 272},
		{1000, 4096, 4096, 1000},
	}
	for _, c := range cases {
		cfg := DefaultConfig()
		cfg.MaxConnections, cfg.MaxMemoryMiB = c.conns, c.mem
		if got := cfg.MemoryBudgetMiB(); got != c.wantMiB {
			t.Errorf("%d conns, %d MiB: budget %d MiB, want %d", c.conns, c.mem, got, c.wantMiB)
		}
		if got := cfg.UsersCarried(); got != c.users {
			t.Errorf("%d conns, %d MiB: carries %d users, want %d", c.conns, c.mem, got, c.users)
		}
		if c.mem == 0 && cfg.UsersCarried() < cfg.MaxConnections {
			t.Errorf("%d conns: the default budget does not carry them", c.conns)
		}
	}
}

// TestREADMEListsEveryConfigField: the operator's reference names every
// field a config file may set.
func TestREADMEListsEveryConfigField(t *testing.T) {
	doc, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	typ := reflect.TypeOf(Config{})
	for i := range typ.NumField() {
		name, _, _ := strings.Cut(typ.Field(i).Tag.Get("json"), ",")
		if name != "" && !strings.Contains(string(doc), "`"+name+"`") {
			t.Errorf("rendezvous/README.md does not describe %q", name)
		}
	}
}

func TestSessionWindow(t *testing.T) {
	c := DefaultConfig()
	for _, tt := range []struct {
		asked uint32
		want  int
	}{{0, c.InboxWindow}, {1, 1}, {64, 64}, {uint32(c.MaxInboxWindow), c.MaxInboxWindow}, {1 << 31, c.MaxInboxWindow}} {
		if got := c.window(tt.asked); got != tt.want {
			t.Errorf("window(%d) = %d, want %d", tt.asked, got, tt.want)
		}
	}
}

// TestEffectiveConfig: what --print-config shows is what the relay runs
// with: the memory budget derived from max_connections when not set.
func TestEffectiveConfig(t *testing.T) {
	c := DefaultConfig()
	if got := c.Effective().MaxMemoryMiB; got != c.MemoryBudgetMiB() || got == 0 {
		t.Fatalf("effective max_memory_mib %d, budget %d", got, c.MemoryBudgetMiB())
	}
	c.MaxMemoryMiB = 900
	if got := c.Effective().MaxMemoryMiB; got != 900 {
		t.Fatalf("a set max_memory_mib became %d", got)
	}
}
