package api

import (
	"crypto/subtle"
	"embed"
	"io/fs"
	"net/http"
	"strings"
)

//go:embed ui/*
var uiFiles embed.FS

// UI serves the web interface: plain HTML, CSS and JavaScript embedded in
// the binary, no build step and no fetch from anywhere else. GET
// /login?token=T checks the API token and, if it is right, stores it in an
// HttpOnly, SameSite=Strict cookie and redirects to the interface: the
// page's script never sees the token, and no other site's page can make
// the browser send it (the API also refuses other origins). A strict
// Content-Security-Policy allows only the node's own scripts and styles.
type UI struct {
	token string
	files http.Handler
}

// NewUI returns the web interface guarded by token.
func NewUI(token string) *UI {
	sub, _ := fs.Sub(uiFiles, "ui")
	return &UI{token: token, files: http.StripPrefix("/ui/", http.FileServer(http.FS(sub)))}
}

// LoginPath is where the daemon's printed link points.
const LoginPath = "/login"

func securityHeaders(w http.ResponseWriter) {
	h := w.Header()
	h.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'")
	h.Set("X-Frame-Options", "DENY")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
}

func (u *UI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	securityHeaders(w)
	if !sameOrigin(r) {
		http.Error(w, "cross-origin requests are refused", http.StatusForbidden)
		return
	}
	switch {
	case r.URL.Path == LoginPath:
		tok := r.URL.Query().Get("token")
		if tok == "" || subtle.ConstantTimeCompare([]byte(tok), []byte(u.token)) != 1 {
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			w.WriteHeader(http.StatusUnauthorized)
			w.Write([]byte("This link's token is not this node's. Run `kith ui` to print the right link.\n"))
			return
		}
		http.SetCookie(w, &http.Cookie{Name: TokenCookieName(r.Host), Value: u.token, Path: "/", HttpOnly: true,
			SameSite: http.SameSiteStrictMode, MaxAge: 30 * 24 * 3600})
		http.Redirect(w, r, "/", http.StatusSeeOther)
	case r.URL.Path == "/":
		w.Header().Set("Cache-Control", "no-store")
		b, _ := uiFiles.ReadFile("ui/index.html")
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Write(b)
	case strings.HasPrefix(r.URL.Path, "/ui/"):
		u.files.ServeHTTP(w, r)
	default:
		http.NotFound(w, r)
	}
}
