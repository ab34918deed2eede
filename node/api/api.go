package api

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	qrcode "github.com/skip2/go-qrcode"

	"github.com/kithnet/kith/node"
	"github.com/kithnet/kith/node/book"
)

// Node is what the API asks of a personal node: *node.Node, or a fake in
// tests. Each method is one route's work; the API only translates between
// HTTP and these.
type Node interface {
	IDView() (node.IDView, error)
	Status() node.StatusView
	AddInvite(ctx context.Context, link, message string) (*node.RequestView, error)
	Requests() []node.RequestView
	Accept(ctx context.Context, id string) (*book.Friend, error)
	Decline(id string) error
	CancelRequest(ctx context.Context, id string) error
	Friends(ctx context.Context) []node.FriendView
	Unfriend(ctx context.Context, who string) error
	Ping(ctx context.Context, who string, count int) ([]node.PingView, error)
	Block(ctx context.Context, who string, unfriend bool) error
	Unblock(who string) error
	Blocked() []node.BlockedView
	Settings() node.SettingsView
	Consents() []node.AskView
	AnswerConsent(ctx context.Context, id string, approve bool) (node.AskView, error)
	MakeInvite(b node.InviteBody) (node.InviteView, error)
	Invites() []node.InviteView
	RevokeInvite(which string) (node.InviteView, error)
	UpdateSettings(b node.SettingsBody) (node.SettingsView, error)
	Groups() []node.GroupView
	CreateGroup(name string) error
	RenameGroup(old, name string) error
	DeleteGroup(name string) error
	AddToGroup(name string, who []string) error
	RemoveFromGroup(name string, who []string) error
	Share(ctx context.Context, a node.ShareArgs) (*node.ShareResult, error)
	Shares() []node.ShareView
	AllShares() []node.ShareView
	DismissShare(id string, dismissed bool) error
	Pick(ctx context.Context, a node.PickArgs) ([]node.PickView, error)
	Subscribe() (<-chan node.Event, func())
}

var _ Node = (*node.Node)(nil)

// API is the node's local HTTP API, served on 127.0.0.1 under /api/. Every
// request must carry the token kept in the data directory (header
// "Authorization: Bearer TOKEN"); anything else is answered 401. Requests
// from other origins are refused (403), so a web page elsewhere can never
// drive the node, token or not. Handlers only translate between HTTP and
// Node methods.
type API struct {
	n      Node
	backup func(ctx context.Context, passphrase []byte) ([]byte, error)
	token  string
	mux    *http.ServeMux
	closed chan struct{} // closed by Close: event streams end
	once   sync.Once
}

// SetBackup serves POST /api/backup with f: the data directory sealed
// under the passphrase in the request.
func (a *API) SetBackup(f func(ctx context.Context, passphrase []byte) ([]byte, error)) { a.backup = f }

// BackupBody asks for a backup sealed under Passphrase.
type BackupBody struct {
	Passphrase string `json:"passphrase"`
}

func (a *API) makeBackup(w http.ResponseWriter, r *http.Request) {
	if a.backup == nil {
		writeError(w, http.StatusNotFound, "this node makes no backups")
		return
	}
	var b BackupBody
	if !decode(w, r, &b) {
		return
	}
	data, err := a.backup(r.Context(), []byte(b.Passphrase))
	if err != nil {
		fail(w, err, nil)
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Cache-Control", "no-store")
	w.Write(data)
}

// Close ends the open event streams, so that a server shutting down need
// not wait for them (and browsers reconnect when it is back).
func (a *API) Close() { a.once.Do(func() { close(a.closed) }) }

// NewAPI returns the API of n, guarded by token.
func NewAPI(n Node, token string) *API {
	a := &API{n: n, token: token, mux: http.NewServeMux(), closed: make(chan struct{})}
	a.mux.HandleFunc("GET /api/id", a.id)
	a.mux.HandleFunc("GET /api/invite.png", a.invitePNG)
	a.mux.HandleFunc("GET /api/status", a.status)
	a.mux.HandleFunc("POST /api/add", a.add)
	a.mux.HandleFunc("GET /api/requests", a.requests)
	a.mux.HandleFunc("POST /api/requests/{id}/accept", a.accept)
	a.mux.HandleFunc("POST /api/requests/{id}/decline", a.decline)
	a.mux.HandleFunc("POST /api/requests/{id}/cancel", a.cancelRequest)
	a.mux.HandleFunc("GET /api/friends", a.friends)
	a.mux.HandleFunc("POST /api/unfriend", a.unfriend)
	a.mux.HandleFunc("POST /api/ping", a.ping)
	a.mux.HandleFunc("POST /api/block", a.block)
	a.mux.HandleFunc("POST /api/unblock", a.unblock)
	a.mux.HandleFunc("GET /api/blocked", a.blocked)
	a.mux.HandleFunc("GET /api/settings", a.settings)
	a.mux.HandleFunc("GET /api/consents", a.consents)
	a.mux.HandleFunc("POST /api/consents/{id}/approve", a.answerConsent(true))
	a.mux.HandleFunc("POST /api/consents/{id}/refuse", a.answerConsent(false))
	a.mux.HandleFunc("GET /api/invites", a.invites)
	a.mux.HandleFunc("POST /api/invites", a.makeInvite)
	a.mux.HandleFunc("POST /api/invites/{token}/revoke", a.revokeInvite)
	a.mux.HandleFunc("GET /api/invites/{token}/qr.png", a.inviteQR)
	a.mux.HandleFunc("POST /api/settings", a.updateSettings)
	a.mux.HandleFunc("GET /api/groups", a.groups)
	a.mux.HandleFunc("POST /api/groups", a.createGroup)
	a.mux.HandleFunc("POST /api/groups/{name}/rename", a.renameGroup)
	a.mux.HandleFunc("DELETE /api/groups/{name}", a.deleteGroup)
	a.mux.HandleFunc("POST /api/groups/{name}/members", a.addMembers)
	a.mux.HandleFunc("POST /api/groups/{name}/members/remove", a.removeMembers)
	a.mux.HandleFunc("POST /api/share", a.share)
	a.mux.HandleFunc("GET /api/shares", a.shares)
	a.mux.HandleFunc("POST /api/shares/{id}/pick", a.pick)
	a.mux.HandleFunc("POST /api/shares/{id}/dismiss", a.dismissShare(true))
	a.mux.HandleFunc("POST /api/shares/{id}/restore", a.dismissShare(false))
	a.mux.HandleFunc("GET /api/events", a.eventStream)
	a.mux.HandleFunc("POST /api/backup", a.makeBackup)
	return a
}

// ServeHTTP checks origin and token, then routes.
func (a *API) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !sameOrigin(r) {
		writeError(w, http.StatusForbidden, "cross-origin requests are refused")
		return
	}
	if !strings.HasPrefix(r.URL.Path, "/api/") {
		writeError(w, http.StatusNotFound, "not found")
		return
	}
	if !a.authorized(r) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="kith"`)
		writeError(w, http.StatusUnauthorized, "missing or wrong API token (it is in the data directory, file api-token)")
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 1<<20)
	securityHeaders(w)
	a.mux.ServeHTTP(w, r)
}

func (a *API) authorized(r *http.Request) bool {
	got := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
	if got == "" {
		if c, err := r.Cookie(TokenCookieName(r.Host)); err == nil {
			got = c.Value
		}
	}
	return got != "" && subtle.ConstantTimeCompare([]byte(got), []byte(a.token)) == 1
}

// TokenCookie prefixes the cookie that carries the API token for the web
// interface. Browsers share cookies between the ports of one host, and
// several nodes may run on one machine (kith demo runs six), so the
// cookie's name ends with the port: "kith_token_7464".
const TokenCookie = "kith_token"

// TokenCookieName returns the token cookie's name for a Host header.
func TokenCookieName(host string) string {
	port := "80"
	if i := strings.LastIndex(host, ":"); i >= 0 && !strings.HasSuffix(host, "]") {
		port = host[i+1:]
	}
	return TokenCookie + "_" + port
}

// sameOrigin refuses browser requests made from another origin: if an
// Origin header is present, its host must be the request's host, and a
// Sec-Fetch-Site of cross-site is refused outright.
func sameOrigin(r *http.Request) bool {
	if r.Header.Get("Sec-Fetch-Site") == "cross-site" {
		return false
	}
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true // not a browser, or a same-origin GET
	}
	u, err := url.Parse(origin)
	return err == nil && u.Host == r.Host
}

// ---- responses

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, msg string) {
	code := map[int]string{http.StatusBadRequest: node.CodeBadRequest, http.StatusUnauthorized: node.CodeUnauthorized,
		http.StatusForbidden: node.CodeForbidden, http.StatusMisdirectedRequest: node.CodeMisdirected,
		http.StatusNotFound: node.CodeNotFound, http.StatusMethodNotAllowed: node.CodeBadRequest}[status]
	if code == "" {
		code = node.CodeInternal
	}
	writeJSON(w, status, node.ErrorBody{Error: msg, Code: code})
}

// CodeOf maps a node error to its stable code (node.Code...).
func CodeOf(err error) string {
	switch {
	case errors.Is(err, book.ErrAmbiguous):
		return node.CodeAmbiguous
	case errors.Is(err, book.ErrBadArgument):
		return node.CodeBadArgument
	case errors.Is(err, book.ErrNotFriend):
		return node.CodeNotFriend
	case errors.Is(err, book.ErrNotFound):
		return node.CodeNotFound
	case errors.Is(err, book.ErrAlreadyFinal):
		return node.CodeAlreadyAnswered
	case errors.Is(err, book.ErrNeedsConfirm):
		return node.CodeNeedsConfirm
	case errors.Is(err, node.ErrRefused):
		return node.CodeRefused
	case errors.Is(err, node.ErrNoRelay):
		return node.CodeNoRelay
	}
	return node.CodeInternal
}

// statusOf maps a node error to an HTTP status.
func statusOf(err error) int {
	switch {
	case errors.Is(err, book.ErrBadArgument), errors.Is(err, book.ErrAmbiguous):
		return http.StatusBadRequest
	case errors.Is(err, book.ErrNotFound), errors.Is(err, book.ErrNotFriend):
		return http.StatusNotFound
	case errors.Is(err, book.ErrAlreadyFinal), errors.Is(err, book.ErrNeedsConfirm):
		return http.StatusConflict
	case errors.Is(err, node.ErrRefused):
		return http.StatusUnprocessableEntity
	case errors.Is(err, node.ErrNoRelay):
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

func fail(w http.ResponseWriter, err error, result any) {
	writeJSON(w, statusOf(err), node.ErrorBody{Error: err.Error(), Code: CodeOf(err), Result: result})
}

func decode(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil && !errors.Is(err, io.EOF) {
		writeError(w, http.StatusBadRequest, "bad request body: "+err.Error())
		return false
	}
	return true
}

func opContext(r *http.Request) (context.Context, context.CancelFunc) {
	return context.WithTimeout(r.Context(), 60*time.Second)
}

// ---- handlers

func (a *API) id(w http.ResponseWriter, r *http.Request) {
	v, err := a.n.IDView()
	if err != nil {
		fail(w, err, nil)
		return
	}
	writeJSON(w, http.StatusOK, v)
}

// invitePNG draws the user's invite link as a QR code.
func (a *API) invitePNG(w http.ResponseWriter, r *http.Request) {
	v, err := a.n.IDView()
	if err != nil {
		fail(w, err, nil)
		return
	}
	writeQR(w, v.Invite)
}

func writeQR(w http.ResponseWriter, text string) {
	png, err := qrcode.Encode(text, qrcode.Medium, 320)
	if err != nil {
		fail(w, err, nil)
		return
	}
	w.Header().Set("Content-Type", "image/png")
	w.Header().Set("Cache-Control", "no-store")
	w.Write(png)
}

func (a *API) invites(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, a.n.Invites())
}

func (a *API) makeInvite(w http.ResponseWriter, r *http.Request) {
	var b node.InviteBody
	if !decode(w, r, &b) {
		return
	}
	v, err := a.n.MakeInvite(b)
	if err != nil {
		fail(w, err, nil)
		return
	}
	writeJSON(w, http.StatusOK, v)
}

func (a *API) revokeInvite(w http.ResponseWriter, r *http.Request) {
	v, err := a.n.RevokeInvite(r.PathValue("token"))
	if err != nil {
		fail(w, err, nil)
		return
	}
	writeJSON(w, http.StatusOK, v)
}

func (a *API) inviteQR(w http.ResponseWriter, r *http.Request) {
	for _, v := range a.n.Invites() {
		if v.Token == r.PathValue("token") {
			writeQR(w, v.Link)
			return
		}
	}
	fail(w, book.Kindf(book.ErrNotFound, "no invite %q", r.PathValue("token")), nil)
}

func (a *API) status(w http.ResponseWriter, r *http.Request) {
	v := a.n.Status()
	v.API = "http://" + r.Host + "/"
	writeJSON(w, http.StatusOK, v)
}

func (a *API) add(w http.ResponseWriter, r *http.Request) {
	var b node.AddBody
	if !decode(w, r, &b) {
		return
	}
	ctx, cancel := opContext(r)
	defer cancel()
	v, err := a.n.AddInvite(ctx, b.Invite, b.Message)
	if err != nil {
		fail(w, err, v)
		return
	}
	writeJSON(w, http.StatusOK, v)
}

func (a *API) requests(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, a.n.Requests())
}

func (a *API) accept(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := opContext(r)
	defer cancel()
	f, err := a.n.Accept(ctx, r.PathValue("id"))
	if err != nil {
		fail(w, err, nil)
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"friend": f.ID.String(), "name": f.Name})
}

func (a *API) decline(w http.ResponseWriter, r *http.Request) {
	if err := a.n.Decline(r.PathValue("id")); err != nil {
		fail(w, err, nil)
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{})
}

func (a *API) cancelRequest(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := opContext(r)
	defer cancel()
	if err := a.n.CancelRequest(ctx, r.PathValue("id")); err != nil {
		fail(w, err, nil)
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{})
}

func (a *API) friends(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, a.n.Friends(r.Context()))
}

func (a *API) unfriend(w http.ResponseWriter, r *http.Request) {
	var b node.PeerBody
	if !decode(w, r, &b) {
		return
	}
	ctx, cancel := opContext(r)
	defer cancel()
	if err := a.n.Unfriend(ctx, b.Peer); err != nil {
		fail(w, err, nil)
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{})
}

// PingBody asks to reach a friend's node count times.
type PingBody struct {
	Peer  string `json:"peer"`
	Count int    `json:"count"`
}

func (a *API) ping(w http.ResponseWriter, r *http.Request) {
	var b PingBody
	if !decode(w, r, &b) {
		return
	}
	if b.Count == 0 {
		b.Count = 1
	}
	ctx, cancel := context.WithTimeout(r.Context(), time.Duration(b.Count)*45*time.Second)
	defer cancel()
	v, err := a.n.Ping(ctx, b.Peer, b.Count)
	if err != nil {
		fail(w, err, nil)
		return
	}
	writeJSON(w, http.StatusOK, v)
}

func (a *API) block(w http.ResponseWriter, r *http.Request) {
	var b node.BlockBody
	if !decode(w, r, &b) {
		return
	}
	if err := a.n.Block(r.Context(), b.Peer, b.Unfriend); err != nil {
		fail(w, err, nil)
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{})
}

func (a *API) unblock(w http.ResponseWriter, r *http.Request) {
	var b node.PeerBody
	if !decode(w, r, &b) {
		return
	}
	if err := a.n.Unblock(b.Peer); err != nil {
		fail(w, err, nil)
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{})
}

func (a *API) blocked(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, a.n.Blocked())
}

func (a *API) consents(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, a.n.Consents())
}

func (a *API) answerConsent(approve bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := opContext(r)
		defer cancel()
		v, err := a.n.AnswerConsent(ctx, r.PathValue("id"), approve)
		if err != nil {
			fail(w, err, nil)
			return
		}
		writeJSON(w, http.StatusOK, v)
	}
}

func (a *API) settings(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, a.n.Settings())
}

func (a *API) updateSettings(w http.ResponseWriter, r *http.Request) {
	var b node.SettingsBody
	if !decode(w, r, &b) {
		return
	}
	v, err := a.n.UpdateSettings(b)
	if err != nil {
		fail(w, err, nil)
		return
	}
	writeJSON(w, http.StatusOK, v)
}

func (a *API) groups(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, a.n.Groups())
}

func (a *API) createGroup(w http.ResponseWriter, r *http.Request) {
	var b node.GroupBody
	if !decode(w, r, &b) {
		return
	}
	if err := a.n.CreateGroup(b.Name); err != nil {
		fail(w, err, nil)
		return
	}
	if len(b.Members) > 0 {
		if err := a.n.AddToGroup(b.Name, b.Members); err != nil {
			fail(w, err, nil)
			return
		}
	}
	writeJSON(w, http.StatusOK, map[string]string{})
}

func (a *API) renameGroup(w http.ResponseWriter, r *http.Request) {
	var b node.GroupBody
	if !decode(w, r, &b) {
		return
	}
	if err := a.n.RenameGroup(r.PathValue("name"), b.Name); err != nil {
		fail(w, err, nil)
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{})
}

func (a *API) deleteGroup(w http.ResponseWriter, r *http.Request) {
	if err := a.n.DeleteGroup(r.PathValue("name")); err != nil {
		fail(w, err, nil)
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{})
}

func (a *API) addMembers(w http.ResponseWriter, r *http.Request) {
	var b node.GroupBody
	if !decode(w, r, &b) {
		return
	}
	if err := a.n.AddToGroup(r.PathValue("name"), b.Members); err != nil {
		fail(w, err, nil)
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{})
}

func (a *API) removeMembers(w http.ResponseWriter, r *http.Request) {
	var b node.GroupBody
	if !decode(w, r, &b) {
		return
	}
	if err := a.n.RemoveFromGroup(r.PathValue("name"), b.Members); err != nil {
		fail(w, err, nil)
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{})
}

func (a *API) share(w http.ResponseWriter, r *http.Request) {
	var b node.ShareArgs
	if !decode(w, r, &b) {
		return
	}
	ctx, cancel := opContext(r)
	defer cancel()
	res, err := a.n.Share(ctx, b)
	if err != nil {
		fail(w, err, res)
		return
	}
	writeJSON(w, http.StatusOK, res)
}

func (a *API) shares(w http.ResponseWriter, r *http.Request) {
	if r.URL.Query().Get("all") != "" {
		writeJSON(w, http.StatusOK, a.n.AllShares())
		return
	}
	writeJSON(w, http.StatusOK, a.n.Shares())
}

func (a *API) dismissShare(dismissed bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if err := a.n.DismissShare(r.PathValue("id"), dismissed); err != nil {
			fail(w, err, nil)
			return
		}
		writeJSON(w, http.StatusOK, map[string]string{})
	}
}

func (a *API) pick(w http.ResponseWriter, r *http.Request) {
	var b node.PickArgs
	if !decode(w, r, &b) {
		return
	}
	b.Share = r.PathValue("id")
	ctx, cancel := opContext(r)
	defer cancel()
	res, err := a.n.Pick(ctx, b)
	if err != nil {
		fail(w, err, nil)
		return
	}
	writeJSON(w, http.StatusOK, res)
}

// eventStream sends live events as server-sent events.
func (a *API) eventStream(w http.ResponseWriter, r *http.Request) {
	fl, ok := w.(http.Flusher)
	if !ok {
		writeError(w, http.StatusInternalServerError, "streaming unsupported")
		return
	}
	ch, stop := a.n.Subscribe()
	defer stop()
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	fmt.Fprint(w, ": kith events\n\n")
	fl.Flush()
	ping := time.NewTicker(25 * time.Second)
	defer ping.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case <-a.closed:
			return
		case <-ping.C:
			fmt.Fprint(w, ": ping\n\n")
			fl.Flush()
		case e, ok := <-ch:
			if !ok {
				return
			}
			b, _ := json.Marshal(e)
			fmt.Fprintf(w, "event: %s\ndata: %s\n\n", e.Type, b)
			fl.Flush()
		}
	}
}
