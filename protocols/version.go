package protocols

import (
	"fmt"
	"runtime/debug"
	"strings"
)

// Build describes the running binary, from the module and version
// control information the Go toolchain stamps into it.
type Build struct {
	Version  string `json:"version"`            // the module version, or "(devel)"
	Commit   string `json:"commit,omitempty"`   // vcs.revision
	Time     string `json:"time,omitempty"`     // vcs.time, the commit's time
	Modified bool   `json:"modified,omitempty"` // built from a tree with uncommitted changes
	Go       string `json:"go"`
}

// BuildInfo returns what the binary says about its build.
func BuildInfo() Build {
	b := Build{Version: "(devel)"}
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return b
	}
	b.Go = info.GoVersion
	if v := info.Main.Version; v != "" {
		b.Version = v
	}
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			b.Commit = s.Value
		case "vcs.time":
			b.Time = s.Value
		case "vcs.modified":
			b.Modified = s.Value == "true"
		}
	}
	return b
}

// String is the one line `NAME version` prints after the name.
func (b Build) String() string {
	var parts []string
	parts = append(parts, b.Version)
	if b.Commit != "" {
		c := b.Commit
		if len(c) > 12 {
			c = c[:12]
		}
		if b.Modified {
			c += "+modified"
		}
		parts = append(parts, "commit "+c)
	}
	if b.Time != "" {
		parts = append(parts, b.Time)
	}
	parts = append(parts, b.Go)
	return strings.Join(parts, ", ")
}

// AgentVersion is what a host announces in libp2p's identify protocol.
func AgentVersion(binary string) string {
	b := BuildInfo()
	v := b.Version
	if b.Commit != "" && v == "(devel)" {
		v = b.Commit[:min(len(b.Commit), 12)]
	}
	return fmt.Sprintf("%s/%s", binary, v)
}
