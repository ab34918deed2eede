package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/kithnet/kith/node"
)

// Client is the typed client of a running daemon's local API, found
// through its data directory. The CLI speaks only through it.
type Client struct {
	base  string
	token string
	hc    *http.Client
}

// ErrDaemonNotRunning is returned when the data directory has no running
// daemon.
var ErrDaemonNotRunning = errors.New("the kith daemon is not running")

// APIError is a failure the daemon reported.
type APIError struct {
	Status  int
	Code    string // stable (node.Code...)
	Message string
	Result  json.RawMessage // a partial result, when the daemon sent one
}

func (e *APIError) Error() string { return e.Message }

// NewClient finds the daemon of dataDir.
func NewClient(dataDir string) (*Client, error) {
	info, err := ReadInfo(dataDir)
	if err != nil {
		return nil, fmt.Errorf("%w (start it with: kith up --data %s)", ErrDaemonNotRunning, dataDir)
	}
	token, err := os.ReadFile(filepath.Join(dataDir, TokenFile))
	if err != nil {
		return nil, fmt.Errorf("reading the API token: %w", err)
	}
	// No client-wide timeout: each call has its caller's deadline (a ping
	// of many tries takes minutes).
	return &Client{base: strings.TrimSuffix(info.URL, "/"), token: strings.TrimSpace(string(token)),
		hc: &http.Client{}}, nil
}

// URL returns the daemon's base URL.
func (c *Client) URL() string { return c.base + "/" }

func (c *Client) call(ctx context.Context, method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return fmt.Errorf("%w (%v)", ErrDaemonNotRunning, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 512<<20)) // a backup can be large
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		var eb struct {
			Error  string          `json:"error"`
			Code   string          `json:"code"`
			Result json.RawMessage `json:"result"`
		}
		if json.Unmarshal(data, &eb) != nil || eb.Error == "" {
			eb.Error = fmt.Sprintf("the daemon answered %s", resp.Status)
		}
		if out != nil && len(eb.Result) > 0 && string(eb.Result) != "null" {
			json.Unmarshal(eb.Result, out)
		}
		return &APIError{Status: resp.StatusCode, Code: eb.Code, Message: eb.Error, Result: eb.Result}
	}
	if out == nil {
		return nil
	}
	if raw, ok := out.(*[]byte); ok {
		*raw = data
		return nil
	}
	return json.Unmarshal(data, out)
}

// ID returns the user's id, name and invite.
func (c *Client) ID(ctx context.Context) (node.IDView, error) {
	var v node.IDView
	return v, c.call(ctx, "GET", "/api/id", nil, &v)
}

// Status returns the daemon's status.
func (c *Client) Status(ctx context.Context) (node.StatusView, error) {
	var v node.StatusView
	return v, c.call(ctx, "GET", "/api/status", nil, &v)
}

// Add sends a friend request through an invite link.
func (c *Client) Add(ctx context.Context, invite, message string) (node.RequestView, error) {
	var v node.RequestView
	return v, c.call(ctx, "POST", "/api/add", node.AddBody{Invite: invite, Message: message}, &v)
}

// Requests lists friend requests.
func (c *Client) Requests(ctx context.Context) ([]node.RequestView, error) {
	var v []node.RequestView
	return v, c.call(ctx, "GET", "/api/requests", nil, &v)
}

// Accept accepts an incoming request.
func (c *Client) Accept(ctx context.Context, id string) error {
	return c.call(ctx, "POST", "/api/requests/"+url.PathEscape(id)+"/accept", nil, nil)
}

// Decline declines an incoming request.
func (c *Client) Decline(ctx context.Context, id string) error {
	return c.call(ctx, "POST", "/api/requests/"+url.PathEscape(id)+"/decline", nil, nil)
}

// Friends lists friends.
func (c *Client) Friends(ctx context.Context) ([]node.FriendView, error) {
	var v []node.FriendView
	return v, c.call(ctx, "GET", "/api/friends", nil, &v)
}

// Unfriend ends a friendship.
func (c *Client) Unfriend(ctx context.Context, p string) error {
	return c.call(ctx, "POST", "/api/unfriend", node.PeerBody{Peer: p}, nil)
}

// Ping reaches a friend's node count times on fresh connections.
func (c *Client) Ping(ctx context.Context, p string, count int) ([]node.PingView, error) {
	var v []node.PingView
	return v, c.call(ctx, "POST", "/api/ping", map[string]any{"peer": p, "count": count}, &v)
}

// Block blocks a peer; unfriend agrees that blocking a friend ends the
// friendship.
func (c *Client) Block(ctx context.Context, p string, unfriend bool) error {
	return c.call(ctx, "POST", "/api/block", node.BlockBody{Peer: p, Unfriend: unfriend}, nil)
}

// Unblock unblocks a peer.
func (c *Client) Unblock(ctx context.Context, p string) error {
	return c.call(ctx, "POST", "/api/unblock", node.PeerBody{Peer: p}, nil)
}

// Blocked lists the blocked peers.
func (c *Client) Blocked(ctx context.Context) ([]node.BlockedView, error) {
	var v []node.BlockedView
	return v, c.call(ctx, "GET", "/api/blocked", nil, &v)
}

// MakeInvite makes an invite.
func (c *Client) MakeInvite(ctx context.Context, b node.InviteBody) (node.InviteView, error) {
	var v node.InviteView
	return v, c.call(ctx, "POST", "/api/invites", b, &v)
}

// Invites lists the user's invites.
func (c *Client) Invites(ctx context.Context) ([]node.InviteView, error) {
	var v []node.InviteView
	return v, c.call(ctx, "GET", "/api/invites", nil, &v)
}

// RevokeInvite revokes an invite by token prefix or label.
func (c *Client) RevokeInvite(ctx context.Context, which string) (node.InviteView, error) {
	var v node.InviteView
	return v, c.call(ctx, "POST", "/api/invites/"+url.PathEscape(which)+"/revoke", nil, &v)
}

// CancelRequest cancels an outgoing request.
func (c *Client) CancelRequest(ctx context.Context, id string) error {
	return c.call(ctx, "POST", "/api/requests/"+url.PathEscape(id)+"/cancel", nil, nil)
}

// AllShares lists the received shares, the dismissed ones too.
func (c *Client) AllShares(ctx context.Context) ([]node.ShareView, error) {
	var v []node.ShareView
	return v, c.call(ctx, "GET", "/api/shares?all=1", nil, &v)
}

// DismissShare puts a received share away, or back.
func (c *Client) DismissShare(ctx context.Context, id string, dismissed bool) error {
	verb := "dismiss"
	if !dismissed {
		verb = "restore"
	}
	return c.call(ctx, "POST", "/api/shares/"+url.PathEscape(id)+"/"+verb, nil, nil)
}

// Backup asks the daemon for a backup of its data directory sealed under
// passphrase.
func (c *Client) Backup(ctx context.Context, passphrase string) ([]byte, error) {
	var raw []byte
	err := c.call(ctx, "POST", "/api/backup", map[string]string{"passphrase": passphrase}, &raw)
	return raw, err
}

// Consents lists the asks in and out.
func (c *Client) Consents(ctx context.Context) ([]node.AskView, error) {
	var v []node.AskView
	return v, c.call(ctx, "GET", "/api/consents", nil, &v)
}

// AnswerConsent approves or refuses a friend's ask.
func (c *Client) AnswerConsent(ctx context.Context, id string, approve bool) (node.AskView, error) {
	verb := "refuse"
	if approve {
		verb = "approve"
	}
	var v node.AskView
	return v, c.call(ctx, "POST", "/api/consents/"+url.PathEscape(id)+"/"+verb, nil, &v)
}

// Settings returns the user's settings.
func (c *Client) Settings(ctx context.Context) (node.SettingsView, error) {
	var v node.SettingsView
	return v, c.call(ctx, "GET", "/api/settings", nil, &v)
}

// UpdateSettings changes the fields of b that are set.
func (c *Client) UpdateSettings(ctx context.Context, b node.SettingsBody) (node.SettingsView, error) {
	var v node.SettingsView
	return v, c.call(ctx, "POST", "/api/settings", b, &v)
}

// Groups lists groups.
func (c *Client) Groups(ctx context.Context) ([]node.GroupView, error) {
	var v []node.GroupView
	return v, c.call(ctx, "GET", "/api/groups", nil, &v)
}

// CreateGroup makes a group.
func (c *Client) CreateGroup(ctx context.Context, name string) error {
	return c.call(ctx, "POST", "/api/groups", node.GroupBody{Name: name}, nil)
}

// AddToGroup adds members to a group.
func (c *Client) AddToGroup(ctx context.Context, name string, members []string) error {
	return c.call(ctx, "POST", "/api/groups/"+url.PathEscape(name)+"/members", node.GroupBody{Members: members}, nil)
}

// RemoveFromGroup removes members from a group.
func (c *Client) RemoveFromGroup(ctx context.Context, name string, members []string) error {
	return c.call(ctx, "POST", "/api/groups/"+url.PathEscape(name)+"/members/remove", node.GroupBody{Members: members}, nil)
}

// RenameGroup renames a group.
func (c *Client) RenameGroup(ctx context.Context, old, name string) error {
	return c.call(ctx, "POST", "/api/groups/"+url.PathEscape(old)+"/rename", node.GroupBody{Name: name}, nil)
}

// DeleteGroup deletes a group.
func (c *Client) DeleteGroup(ctx context.Context, name string) error {
	return c.call(ctx, "DELETE", "/api/groups/"+url.PathEscape(name), nil, nil)
}

// Share sends a share; on refusal the result names each failing id.
func (c *Client) Share(ctx context.Context, a node.ShareArgs) (node.ShareResult, error) {
	var v node.ShareResult
	return v, c.call(ctx, "POST", "/api/share", a, &v)
}

// Shares lists received shares.
func (c *Client) Shares(ctx context.Context) ([]node.ShareView, error) {
	var v []node.ShareView
	return v, c.call(ctx, "GET", "/api/shares", nil, &v)
}

// Pick sends requests to shared friends.
func (c *Client) Pick(ctx context.Context, a node.PickArgs) ([]node.PickView, error) {
	var v []node.PickView
	return v, c.call(ctx, "POST", "/api/shares/"+url.PathEscape(a.Share)+"/pick", a, &v)
}

// The files of a data directory that a client reads to find its daemon.
const (
	// TokenFile holds the local API token (mode 0600).
	TokenFile = "api-token"
	// InfoFile holds the running daemon's Info; it is removed when the
	// daemon stops.
	InfoFile = "api.json"
)

// Info is where a running daemon serves its local API.
type Info struct {
	URL string `json:"url"`
	PID int    `json:"pid"`
}

// ReadInfo reads the Info of dir's daemon.
func ReadInfo(dir string) (Info, error) {
	var info Info
	b, err := os.ReadFile(filepath.Join(dir, InfoFile))
	if err != nil {
		return info, err
	}
	return info, json.Unmarshal(b, &info)
}
