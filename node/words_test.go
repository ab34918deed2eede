package node

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/kithnet/kith/protocols"
	"github.com/kithnet/kith/protocols/pb"
)

// TestRelayWords: what `kith status` and the web page say when the
// session with a rendezvous node fails, in words, for the failures seen.
func TestRelayWords(t *testing.T) {
	tests := []struct {
		err  error
		want string
	}{
		{fmt.Errorf("%w: length prefix: stream reset", protocols.ErrUndecodable), "was cut"},
		{fmt.Errorf("read: %w", protocols.ErrTruncated), "was cut"},
		{fmt.Errorf("login: %w", context.DeadlineExceeded), "does not answer"},
		{errors.New("failed to dial 12D3Koo...: all dials failed: dial tcp4 127.0.0.1:4001: connect: connection refused"), "cannot reach"},
		{&protocols.StatusError{Status: pb.Status_RATE_LIMITED, Text: "too many logins; retry in a minute"}, "refused: too many logins"},
	}
	for _, tt := range tests {
		got := relayWords(tt.err)
		if !strings.Contains(got, tt.want) || strings.Contains(got, "length prefix") || strings.Contains(got, "dial tcp") {
			t.Errorf("%v: %q, want words with %q", tt.err, got, tt.want)
		}
	}
}
