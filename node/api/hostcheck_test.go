package api

import (
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestLocalHostOnly(t *testing.T) {
	ok := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) })
	for _, listen := range []*net.TCPAddr{
		{IP: net.IPv4(127, 0, 0, 1), Port: 7464},
		{IP: net.IPv4(127, 0, 0, 5), Port: 7464},
		{IP: net.IPv6loopback, Port: 7464},
	} {
		h := LocalHostOnly(listen, ok)
		tests := []struct {
			host string
			want int
		}{
			{"127.0.0.1:7464", 204},
			{"localhost:7464", 204},
			{"LocalHost:7464", 204},
			{"[::1]:7464", 204},
			{listenHost(listen), 204},
			{"evil.example:7464", 421},
			{"evil.example", 421},
			{"127.0.0.1", 421},
			{"127.0.0.1:80", 421},
			{"localhost:7465", 421},
			{"localhost.evil.example:7464", 421},
			{"127.0.0.1.nip.io:7464", 421},
			{"[::ffff:127.0.0.1]:7464", 421},
			{"", 421},
		}
		for _, tt := range tests {
			t.Run(listen.String()+" "+tt.host, func(t *testing.T) {
				for _, path := range []string{"/", "/api/id"} {
					r := httptest.NewRequest("GET", path, nil)
					r.Host = tt.host
					w := httptest.NewRecorder()
					h.ServeHTTP(w, r)
					if w.Code != tt.want {
						t.Fatalf("%s with Host %q: %d, want %d", path, tt.host, w.Code, tt.want)
					}
				}
			})
		}
	}
}
