package api

import (
	"net"
	"net/http"
	"strconv"
	"strings"
)

// LocalHostOnly serves next only to requests whose Host header names the
// local server itself: 127.0.0.1, localhost or [::1] (and the loopback
// address it listens on, if another) with its port. Anything else is
// answered 421 Misdirected Request, page and API alike. This closes DNS
// rebinding: a page at evil.example whose name is made to resolve to
// 127.0.0.1 reaches the port, but its requests say Host: evil.example.
func LocalHostOnly(listen *net.TCPAddr, next http.Handler) http.Handler {
	allowed := allowedHosts(listen)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !allowed[strings.ToLower(r.Host)] {
			writeError(w, http.StatusMisdirectedRequest,
				"this is a local kith node; it answers only requests addressed to "+listenHost(listen))
			return
		}
		next.ServeHTTP(w, r)
	})
}

// allowedHosts lists the Host headers a local server at listen answers.
func allowedHosts(listen *net.TCPAddr) map[string]bool {
	port := strconv.Itoa(listen.Port)
	hosts := map[string]bool{}
	for _, h := range []string{"127.0.0.1", "localhost", "::1", listen.IP.String()} {
		hosts[strings.ToLower(net.JoinHostPort(h, port))] = true
	}
	return hosts
}

func listenHost(listen *net.TCPAddr) string {
	return net.JoinHostPort(listen.IP.String(), strconv.Itoa(listen.Port))
}
