package node_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/kithnet/kith/node"
)

func TestAPIGuards(t *testing.T) {
	w := newWorld(t)
	alice := w.up("Alice")
	srv := httptest.NewServer(node.NewAPI(alice.n, "s3cret-token"))
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
		{"token in the cookie", "GET", "/api/id", "", map[string]string{"Cookie": node.TokenCookieName(host) + "=s3cret-token"}, 200},
		{"token in another port's cookie", "GET", "/api/id", "", map[string]string{"Cookie": node.TokenCookie + "_1=s3cret-token"}, 401},
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
