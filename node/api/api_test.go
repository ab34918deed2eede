package api_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/kithnet/kith/identity"
	"github.com/kithnet/kith/node"
	"github.com/kithnet/kith/node/api"
	"github.com/kithnet/kith/node/book"
)

// fakeNode is a node with no friends and nothing pending, whose groups are
// a real book's: what the guards and the mapping of errors to statuses
// need, with no network.
type fakeNode struct{ b *book.Book }

func newFakeNode(t *testing.T) fakeNode {
	k, _ := identity.GenerateKey()
	b, err := book.NewBook(k, "Alice")
	if err != nil {
		t.Fatal(err)
	}
	return fakeNode{b}
}

func (fakeNode) IDView() (node.IDView, error) {
	return node.IDView{ID: "12D3KooWFake", Name: "Alice", Invite: "kith:invite:fake"}, nil
}
func (fakeNode) Status() node.StatusView { return node.StatusView{Name: "Alice"} }
func (fakeNode) AddInvite(context.Context, string, string) (*node.RequestView, error) {
	return nil, fmt.Errorf("%w: not an invite", book.ErrBadArgument)
}
func (fakeNode) Requests() []node.RequestView { return []node.RequestView{} }
func (fakeNode) Accept(_ context.Context, id string) (*book.Friend, error) {
	return nil, fmt.Errorf("%w: no request %s", book.ErrNotFound, id)
}
func (fakeNode) Decline(id string) error {
	return fmt.Errorf("%w: no request %s", book.ErrNotFound, id)
}
func (fakeNode) Friends(context.Context) []node.FriendView { return []node.FriendView{} }
func (fakeNode) Unfriend(_ context.Context, who string) error {
	return fmt.Errorf("%w: %s", book.ErrNotFriend, who)
}
func (fakeNode) Ping(_ context.Context, who string, count int) ([]node.PingView, error) {
	return nil, fmt.Errorf("%w: %s", book.ErrNotFriend, who)
}
func (fakeNode) Block(context.Context, string, bool) error { return nil }
func (fakeNode) Unblock(who string) error {
	return fmt.Errorf("%w: %s is not blocked", book.ErrNotFound, who)
}
func (fakeNode) Blocked() []node.BlockedView { return []node.BlockedView{} }
func (fakeNode) CancelRequest(_ context.Context, id string) error {
	return fmt.Errorf("%w: no request %s", book.ErrNotFound, id)
}
func (fakeNode) AllShares() []node.ShareView { return []node.ShareView{} }
func (fakeNode) DismissShare(id string, _ bool) error {
	return fmt.Errorf("%w: no share %s", book.ErrNotFound, id)
}
func (fakeNode) MakeInvite(b node.InviteBody) (node.InviteView, error) {
	return node.InviteView{}, fmt.Errorf("%w: fake", book.ErrBadArgument)
}
func (fakeNode) Invites() []node.InviteView { return []node.InviteView{} }
func (fakeNode) RevokeInvite(which string) (node.InviteView, error) {
	return node.InviteView{}, fmt.Errorf("%w: no invite %s", book.ErrNotFound, which)
}
func (fakeNode) Consents() []node.AskView { return []node.AskView{} }
func (fakeNode) AnswerConsent(_ context.Context, id string, _ bool) (node.AskView, error) {
	return node.AskView{}, fmt.Errorf("%w: no ask %s", book.ErrNotFound, id)
}
func (fakeNode) Settings() node.SettingsView {
	return node.SettingsView{Name: "Alice", Sharing: "friends"}
}
func (fakeNode) UpdateSettings(b node.SettingsBody) (node.SettingsView, error) {
	if b.Sharing != nil {
		if _, err := book.ParsePolicy(*b.Sharing); err != nil {
			return node.SettingsView{}, err
		}
	}
	return node.SettingsView{Name: "Alice", Sharing: "friends"}, nil
}
func (fakeNode) Groups() []node.GroupView         { return []node.GroupView{} }
func (f fakeNode) CreateGroup(name string) error  { _, err := f.b.CreateGroup(name); return err }
func (fakeNode) RenameGroup(string, string) error { return book.ErrNotFound }
func (fakeNode) DeleteGroup(string) error         { return book.ErrNotFound }
func (fakeNode) AddToGroup(string, []string) error {
	return book.ErrNotFound
}
func (fakeNode) RemoveFromGroup(string, []string) error { return book.ErrNotFound }
func (fakeNode) Share(context.Context, node.ShareArgs) (*node.ShareResult, error) {
	return nil, fmt.Errorf("%w: nothing to share", book.ErrBadArgument)
}
func (fakeNode) Shares() []node.ShareView { return []node.ShareView{} }
func (fakeNode) Pick(context.Context, node.PickArgs) ([]node.PickView, error) {
	return nil, book.ErrNotFound
}
func (fakeNode) Subscribe() (<-chan node.Event, func()) { return make(chan node.Event), func() {} }

var _ api.Node = fakeNode{}

func TestAPIGuards(t *testing.T) {
	srv := httptest.NewServer(api.NewAPI(newFakeNode(t), "s3cret-token"))
	defer srv.Close()
	do := func(method, path, body string, hdr map[string]string) int {
		req, _ := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	auth := map[string]string{"Authorization": "Bearer s3cret-token"}
	host := strings.TrimPrefix(srv.URL, "http://")
	tests := []struct {
		name   string
		method string
		path   string
		body   string
		hdr    map[string]string
		want   int
	}{
		{"no token", "GET", "/api/friends", "", nil, 401},
		{"wrong token", "GET", "/api/friends", "", map[string]string{"Authorization": "Bearer nope"}, 401},
		{"token", "GET", "/api/friends", "", auth, 200},
		{"token in the cookie", "GET", "/api/id", "", map[string]string{"Cookie": api.TokenCookieName(host) + "=s3cret-token"}, 200},
		{"token in another port's cookie", "GET", "/api/id", "", map[string]string{"Cookie": api.TokenCookie + "_1=s3cret-token"}, 401},
		{"another origin, even with the token", "POST", "/api/unfriend", `{"peer":"x"}`,
			map[string]string{"Authorization": "Bearer s3cret-token", "Origin": "http://evil.example"}, 403},
		{"a cross-site fetch", "GET", "/api/friends", "", map[string]string{"Authorization": "Bearer s3cret-token", "Sec-Fetch-Site": "cross-site"}, 403},
		{"same origin", "GET", "/api/friends", "", map[string]string{"Authorization": "Bearer s3cret-token", "Origin": "http://" + host}, 200},
		{"unknown field", "POST", "/api/groups", `{"nmae":"x"}`, auth, 400},
		{"not found", "POST", "/api/requests/abcd/accept", "", auth, 404},
		{"bad group name", "POST", "/api/groups", `{"name":""}`, auth, 400},
		{"outside /api", "GET", "/etc/passwd", "", auth, 404},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := do(tt.method, tt.path, tt.body, tt.hdr); got != tt.want {
				t.Fatalf("status %d, want %d", got, tt.want)
			}
		})
	}
}
