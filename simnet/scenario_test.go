package simnet

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/synctest"
)

// TestScenarios runs every story in testdata/*.txt.
func TestScenarios(t *testing.T) {
	files, err := filepath.Glob("testdata/*.txt")
	if err != nil || len(files) == 0 {
		t.Fatalf("no scenarios: %v", err)
	}
	for _, f := range files {
		t.Run(strings.TrimSuffix(filepath.Base(f), ".txt"), func(t *testing.T) {
			script, err := os.Open(f)
			if err != nil {
				t.Fatal(err)
			}
			defer script.Close()
			synctest.Test(t, func(t *testing.T) {
				if err := RunScript(context.Background(), script); err != nil {
					t.Fatalf("%s: %v", f, err)
				}
			})
		})
	}
}
