// Package client is the calling side of Kith's protocols: a node sending a
// share, an add message, a presence query or revocations to a relay (or an
// add message directly to another node), and a node's inbox session with
// its relay. Each call opens one stream, writes one framed request, reads
// one framed response within protocols.StreamDeadline, and returns the
// response with its status as a Go error (a *protocols.StatusError for
// anything but OK).
package client

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"google.golang.org/protobuf/proto"

	"github.com/kithnet/kith/identity"
	"github.com/kithnet/kith/protocols"
	"github.com/kithnet/kith/protocols/pb"
)

// roundTrip sends req on a new stream to p, of the first protocol of ids
// that p speaks, and returns the response frame.
func roundTrip(ctx context.Context, h host.Host, p peer.ID, req proto.Message, ids ...protocol.ID) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, protocols.StreamDeadline)
	defer cancel()
	id := ids[0]
	s, err := h.NewStream(network.WithAllowLimitedConn(ctx, "kith"), p, ids...)
	if err == nil {
		id = s.Protocol()
	}
	if err != nil {
		return nil, fmt.Errorf("open %s to %s: %w", id, identity.ShortID(p), err)
	}
	defer s.Close()
	deadline, _ := ctx.Deadline()
	s.SetDeadline(deadline)
	if err := protocols.WriteMsg(s, req); err != nil {
		s.Reset()
		return nil, fmt.Errorf("send %s: %w", id, err)
	}
	if err := s.CloseWrite(); err != nil {
		s.Reset()
		return nil, fmt.Errorf("send %s: %w", id, err)
	}
	frame, err := protocols.NewReader(s, protocols.MaxResponseMessage).ReadFrame()
	if err != nil {
		s.Reset()
		return nil, fmt.Errorf("read %s response from %s: %w", id, identity.ShortID(p), err)
	}
	return append([]byte(nil), frame...), nil
}

// Share sends a sealed share (protocols.UnverifiedShare.Raw) to a relay.
// The response is returned even when the status is a failure, so the
// caller can show each target's delivery and each failing id.
func Share(ctx context.Context, h host.Host, relay peer.ID, raw []byte) (*pb.ShareResponse, error) {
	var m pb.Share
	if err := proto.Unmarshal(raw, &m); err != nil {
		return nil, fmt.Errorf("share: %w", err)
	}
	frame, err := roundTrip(ctx, h, relay, &m, protocols.ShareProtocol)
	if err != nil {
		return nil, err
	}
	resp, err := protocols.DecodeShareResponse(frame)
	if err != nil {
		return nil, err
	}
	return resp, protocols.ResponseError(resp.Status, resp.Text, resp.Failures)
}

// DirectShare hands a sealed share straight to its target's node p.
func DirectShare(ctx context.Context, h host.Host, p peer.ID, raw []byte) (*pb.ShareResponse, error) {
	var m pb.Share
	if err := proto.Unmarshal(raw, &m); err != nil {
		return nil, fmt.Errorf("share: %w", err)
	}
	frame, err := roundTrip(ctx, h, p, &m, protocols.DirectShareProtocol)
	if err != nil {
		return nil, err
	}
	resp, err := protocols.DecodeShareResponse(frame)
	if err != nil {
		return nil, err
	}
	return resp, protocols.ResponseError(resp.Status, resp.Text, resp.Failures)
}

// Add sends an add message (one request, a combined request, or an
// answer) to a relay or directly to a node.
func Add(ctx context.Context, h host.Host, p peer.ID, m *pb.AddMessage) (*pb.AddResponse, error) {
	frame, err := roundTrip(ctx, h, p, m, protocols.AddProtocol, protocols.LegacyAddProtocol)
	if err != nil {
		return nil, err
	}
	resp, err := protocols.DecodeAddResponse(frame)
	if err != nil {
		return nil, err
	}
	return resp, protocols.ResponseError(resp.Status, resp.Text, nil)
}

// Presence asks a relay about peers.
func Presence(ctx context.Context, h host.Host, relay peer.ID, q *pb.PresenceQuery) (*pb.PresenceResponse, error) {
	frame, err := roundTrip(ctx, h, relay, q, protocols.PresenceProtocol, protocols.LegacyPresenceProtocol)
	if err != nil {
		return nil, err
	}
	resp, err := protocols.DecodePresenceResponse(frame)
	if err != nil {
		return nil, err
	}
	return resp, protocols.ResponseError(resp.Status, resp.Text, nil)
}

// Revoke hands revocations to a relay.
func Revoke(ctx context.Context, h host.Host, relay peer.ID, revocations [][]byte) (*pb.RevokeResponse, error) {
	frame, err := roundTrip(ctx, h, relay, &pb.RevokeRequest{Revocations: revocations}, protocols.RevokeProtocol)
	if err != nil {
		return nil, err
	}
	resp, err := protocols.DecodeRevokeResponse(frame)
	if err != nil {
		return nil, err
	}
	return resp, protocols.ResponseError(resp.Status, resp.Text, resp.Failures)
}

// ErrInboxClosed is returned by Inbox.Next after Close.
var ErrInboxClosed = errors.New("client: inbox closed")

// Inbox is a node's open mailbox at a relay: items arrive with Next, and
// each must be acknowledged with Ack once it is safely stored, or it is
// sent again at the next login.
type Inbox struct {
	// Result is the relay's answer to the login.
	Result *pb.LoginResult
	s      network.Stream
	rd     *protocols.Reader
	wmu    sync.Mutex
	once   sync.Once
}

// Login opens the inbox of the host's user at relay. profile is the
// user's signed profile; peerRecord (optional) is a signed libp2p peer
// record of the addresses to announce; window (0 for the relay's default)
// bounds unacknowledged items in flight.
func Login(ctx context.Context, h host.Host, relay peer.ID, profile, peerRecord []byte, window uint32) (*Inbox, error) {
	ctx, cancel := context.WithTimeout(ctx, protocols.StreamDeadline)
	defer cancel()
	s, err := h.NewStream(network.WithAllowLimitedConn(ctx, "kith"), relay, protocols.InboxProtocol)
	if err != nil {
		return nil, fmt.Errorf("open inbox at %s: %w", identity.ShortID(relay), err)
	}
	deadline, _ := ctx.Deadline()
	s.SetDeadline(deadline)
	login := &pb.InboxClient{Msg: &pb.InboxClient_Login{Login: &pb.Login{Profile: profile, PeerRecord: peerRecord, Window: window}}}
	if err := protocols.WriteMsg(s, login); err != nil {
		s.Reset()
		return nil, fmt.Errorf("login: %w", err)
	}
	rd := protocols.NewReader(s, protocols.MaxInboxMessage)
	frame, err := rd.ReadFrame()
	if err != nil {
		s.Reset()
		return nil, fmt.Errorf("login: %w", err)
	}
	m, err := protocols.DecodeInboxServer(frame)
	if err != nil {
		s.Reset()
		return nil, err
	}
	res := m.GetResult()
	if res == nil {
		s.Reset()
		return nil, fmt.Errorf("login: %w: the relay sent an item before the login result", protocols.ErrBadResponse)
	}
	if err := protocols.ResponseError(res.Status, res.Text, nil); err != nil {
		s.Reset()
		return nil, err
	}
	s.SetDeadline(time.Time{})
	return &Inbox{Result: res, s: s, rd: rd}, nil
}

// Next blocks until the relay pushes an item, the stream ends, or the
// inbox is closed.
func (in *Inbox) Next() (*pb.InboxItem, error) {
	frame, err := in.rd.ReadFrame()
	if err != nil {
		return nil, err
	}
	m, err := protocols.DecodeInboxServer(frame)
	if err != nil {
		return nil, err
	}
	it := m.GetItem()
	if it == nil {
		return nil, fmt.Errorf("%w: a second login result", protocols.ErrBadResponse)
	}
	return it, nil
}

// More reports whether another item has already arrived, so that a reader
// can acknowledge a burst of items in one frame.
func (in *Inbox) More() bool { return in.rd.Buffered() }

// Ack acknowledges items by seq: the relay deletes them.
func (in *Inbox) Ack(seqs ...uint64) error {
	if len(seqs) == 0 {
		return nil
	}
	in.wmu.Lock()
	defer in.wmu.Unlock()
	in.s.SetWriteDeadline(time.Now().Add(protocols.FrameDeadline))
	return protocols.WriteMsg(in.s, &pb.InboxClient{Msg: &pb.InboxClient_Ack{Ack: &pb.Ack{Seqs: seqs}}})
}

// Close ends the session; unacknowledged items stay at the relay.
func (in *Inbox) Close() error {
	in.once.Do(func() { in.s.Reset() })
	return nil
}

// Sharer sends shares to one relay over a long-lived stream, one share at
// a time, opening a new stream when the old one has gone: no stream setup
// or protocol negotiation per share. Use one Sharer per share in flight.
type Sharer struct {
	h     host.Host
	relay peer.ID
	mu    sync.Mutex
	s     network.Stream
	rd    *protocols.Reader
}

// NewSharer returns a Sharer for relay.
func NewSharer(h host.Host, relay peer.ID) *Sharer { return &Sharer{h: h, relay: relay} }

// Share sends one sealed share and returns the relay's answer, as Share
// does. raw goes out as it is, the very bytes that were sealed, without
// being decoded and encoded again; the relay checks them.
func (c *Sharer) Share(ctx context.Context, raw []byte) (*pb.ShareResponse, error) {
	if len(raw) == 0 {
		return nil, errors.New("share: no bytes to send")
	}
	if len(raw) > protocols.MaxShareMessage {
		return nil, fmt.Errorf("share: %w: %d bytes (limit %d)", protocols.ErrTooLarge, len(raw), protocols.MaxShareMessage)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for attempt := 0; ; attempt++ {
		reused := c.s != nil
		if c.s == nil {
			sctx, cancel := context.WithTimeout(ctx, protocols.StreamDeadline)
			s, err := c.h.NewStream(network.WithAllowLimitedConn(sctx, "kith"), c.relay, protocols.ShareProtocol)
			cancel()
			if err != nil {
				return nil, fmt.Errorf("open %s to %s: %w", protocols.ShareProtocol, identity.ShortID(c.relay), err)
			}
			c.s, c.rd = s, protocols.NewReader(s, protocols.MaxResponseMessage)
		}
		deadline := time.Now().Add(protocols.StreamDeadline)
		if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
			deadline = d
		}
		c.s.SetDeadline(deadline)
		var frame []byte
		err := protocols.WriteFrame(c.s, raw)
		if err == nil {
			frame, err = c.rd.ReadFrame()
		}
		if err != nil {
			c.s.Reset()
			c.s = nil
			if reused && attempt == 0 && ctx.Err() == nil {
				continue // the old stream was gone; the relay answers a retry of the same bytes idempotently
			}
			return nil, fmt.Errorf("share to %s: %w", identity.ShortID(c.relay), err)
		}
		resp, err := protocols.DecodeShareResponse(frame)
		if err != nil {
			c.s.Reset()
			c.s = nil
			return nil, err
		}
		return resp, protocols.ResponseError(resp.Status, resp.Text, resp.Failures)
	}
}

// Close ends the stream.
func (c *Sharer) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.s != nil {
		c.s.Close()
		c.s = nil
	}
	return nil
}
