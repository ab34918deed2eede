package protocols

import (
	"github.com/libp2p/go-libp2p/core/peer"
	"google.golang.org/protobuf/proto"

	"github.com/kithnet/kith/identity"
	"github.com/kithnet/kith/protocols/pb"
)

// The decoders below parse one frame and check the rules a receiver relies
// on (sizes, counts, well-formed ids, known enum values). Errors are
// *StatusError, with BAD_REQUEST or TOO_LARGE for requests and
// ErrBadResponse for responses. Signatures are checked by the receiver,
// with package identity, on the exact bytes.

func decodeFrame(what string, frame []byte, max int, m proto.Message) error {
	if len(frame) > max {
		return Errorf(pb.Status_TOO_LARGE, "%s of %d bytes, limit %d", what, len(frame), max)
	}
	if err := proto.Unmarshal(frame, m); err != nil {
		return Errorf(pb.Status_BAD_REQUEST, "%s does not decode: %v", what, err)
	}
	return nil
}

func badResponse(format string, args ...any) *StatusError {
	e := Errorf(pb.Status_STATUS_UNSPECIFIED, format, args...)
	return e
}

func checkStatus(s pb.Status) error {
	if _, ok := pb.Status_name[int32(s)]; !ok || s == pb.Status_STATUS_UNSPECIFIED {
		return badResponse("status %d", int32(s))
	}
	return nil
}

func checkReason(r pb.Reason) bool {
	_, ok := pb.Reason_name[int32(r)]
	return ok
}

// DecodeInboxClient parses what a node sends on the inbox stream.
func DecodeInboxClient(frame []byte) (*pb.InboxClient, error) {
	var m pb.InboxClient
	if err := decodeFrame("inbox message", frame, MaxInboxClient, &m); err != nil {
		return nil, err
	}
	switch msg := m.Msg.(type) {
	case *pb.InboxClient_Login:
		if len(msg.Login.Profile) == 0 {
			return nil, Errorf(pb.Status_BAD_REQUEST, "login without a profile")
		}
		if len(msg.Login.Profile) > identity.MaxRecordSize || len(msg.Login.PeerRecord) > identity.MaxRecordSize {
			return nil, Errorf(pb.Status_TOO_LARGE, "login records too large")
		}
	case *pb.InboxClient_Ack:
		if len(msg.Ack.Seqs) == 0 {
			return nil, Errorf(pb.Status_BAD_REQUEST, "empty acknowledgement")
		}
		if len(msg.Ack.Seqs) > 4096 {
			return nil, Errorf(pb.Status_TOO_LARGE, "%d acknowledgements in one frame, limit 4096", len(msg.Ack.Seqs))
		}
	default:
		return nil, Errorf(pb.Status_BAD_REQUEST, "inbox message carries nothing")
	}
	return &m, nil
}

// DecodeInboxServer parses what a relay sends on the inbox stream.
func DecodeInboxServer(frame []byte) (*pb.InboxServer, error) {
	var m pb.InboxServer
	if err := decodeFrame("inbox message", frame, MaxInboxMessage, &m); err != nil {
		return nil, badResponse("%v", err)
	}
	switch msg := m.Msg.(type) {
	case *pb.InboxServer_Result:
		if err := checkStatus(msg.Result.Status); err != nil {
			return nil, err
		}
	case *pb.InboxServer_Item:
		it := msg.Item
		if it.Seq == 0 {
			return nil, badResponse("inbox item without a sequence number")
		}
		// A kind this node does not know (a newer relay's) is passed on:
		// the node acknowledges and skips it, and its inbox goes on. Kind
		// 0 is no kind at all.
		if it.Kind == pb.ItemKind_ITEM_UNSPECIFIED {
			return nil, badResponse("inbox item %d of no kind", it.Seq)
		}
		if len(it.Payload) == 0 {
			return nil, badResponse("inbox item %d is empty", it.Seq)
		}
		if len(it.From) > 0 {
			if _, err := peer.IDFromBytes(it.From); err != nil {
				return nil, badResponse("inbox item %d: sender is not a peer id", it.Seq)
			}
		}
		for _, f := range it.Refused {
			if !checkReason(f.Reason) {
				return nil, badResponse("unknown reason %d", f.Reason)
			}
		}
	default:
		return nil, badResponse("inbox message carries nothing")
	}
	return &m, nil
}

// DecodeWithdrawal parses the payload of a WITHDRAWAL inbox item.
func DecodeWithdrawal(payload []byte) (*pb.Withdrawal, error) {
	var m pb.Withdrawal
	if err := decodeFrame("withdrawal", payload, MaxInboxMessage, &m); err != nil {
		return nil, err
	}
	if len(m.ItemId) == 0 || len(m.ItemId) > 64 || len(m.Revocation) == 0 {
		return nil, Errorf(pb.Status_BAD_REQUEST, "withdrawal without an item id or a revocation")
	}
	return &m, nil
}

// DecodePresenceQuery parses a presence query.
func DecodePresenceQuery(frame []byte) (*pb.PresenceQuery, []peer.ID, error) {
	var m pb.PresenceQuery
	if err := decodeFrame("presence query", frame, MaxPresenceMessage, &m); err != nil {
		return nil, nil, err
	}
	if len(m.Asks) == 0 {
		return nil, nil, Errorf(pb.Status_BAD_REQUEST, "presence query asks about nobody")
	}
	if len(m.Asks) > MaxAsksPerPresence {
		return nil, nil, Errorf(pb.Status_TOO_LARGE, "%d asks, limit %d", len(m.Asks), MaxAsksPerPresence)
	}
	ids := make([]peer.ID, len(m.Asks))
	for i, a := range m.Asks {
		p, err := decodePeer("asked peer", a.Peer)
		if err != nil {
			return nil, nil, err
		}
		ids[i] = p
	}
	return &m, ids, nil
}

// DecodePresenceResponse parses a presence response.
func DecodePresenceResponse(frame []byte) (*pb.PresenceResponse, error) {
	var m pb.PresenceResponse
	if err := decodeFrame("presence response", frame, MaxResponseMessage, &m); err != nil {
		return nil, badResponse("%v", err)
	}
	if err := checkStatus(m.Status); err != nil {
		return nil, err
	}
	for _, e := range m.Entries {
		if _, err := peer.IDFromBytes(e.Peer); err != nil {
			return nil, badResponse("presence entry is not a peer id")
		}
		if !checkReason(e.Refused) {
			return nil, badResponse("unknown reason %d", e.Refused)
		}
	}
	return &m, nil
}

// DecodeRevokeRequest parses a revoke request.
func DecodeRevokeRequest(frame []byte) (*pb.RevokeRequest, error) {
	var m pb.RevokeRequest
	if err := decodeFrame("revoke request", frame, MaxRevokeMessage, &m); err != nil {
		return nil, err
	}
	if len(m.Revocations) == 0 {
		return nil, Errorf(pb.Status_BAD_REQUEST, "revoke request without a revocation")
	}
	if len(m.Revocations) > MaxRevocationsPerMsg {
		return nil, Errorf(pb.Status_TOO_LARGE, "%d revocations, limit %d", len(m.Revocations), MaxRevocationsPerMsg)
	}
	return &m, nil
}

// DecodeShareResponse parses a relay's answer to a share.
func DecodeShareResponse(frame []byte) (*pb.ShareResponse, error) {
	var m pb.ShareResponse
	if err := decodeFrame("share response", frame, MaxResponseMessage, &m); err != nil {
		return nil, badResponse("%v", err)
	}
	if err := checkStatus(m.Status); err != nil {
		return nil, err
	}
	for _, t := range m.Targets {
		if _, err := peer.IDFromBytes(t.Peer); err != nil {
			return nil, badResponse("target result is not about a peer id")
		}
		if _, ok := pb.Delivery_name[int32(t.Delivery)]; !ok || t.Delivery == pb.Delivery_DELIVERY_UNSPECIFIED {
			return nil, badResponse("unknown delivery %d", t.Delivery)
		}
	}
	for _, f := range m.Failures {
		if !checkReason(f.Reason) {
			return nil, badResponse("unknown reason %d", f.Reason)
		}
	}
	return &m, nil
}

// DecodeAddResponse parses the answer to an add message.
func DecodeAddResponse(frame []byte) (*pb.AddResponse, error) {
	var m pb.AddResponse
	if err := decodeFrame("add response", frame, MaxResponseMessage, &m); err != nil {
		return nil, badResponse("%v", err)
	}
	if err := checkStatus(m.Status); err != nil {
		return nil, err
	}
	for _, r := range m.Results {
		if _, ok := pb.Delivery_name[int32(r.Delivery)]; !ok {
			return nil, badResponse("unknown delivery %d", r.Delivery)
		}
		if !checkReason(r.Reason) {
			return nil, badResponse("unknown reason %d", r.Reason)
		}
	}
	return &m, nil
}

// DecodeRevokeResponse parses the answer to a revoke request.
func DecodeRevokeResponse(frame []byte) (*pb.RevokeResponse, error) {
	var m pb.RevokeResponse
	if err := decodeFrame("revoke response", frame, MaxResponseMessage, &m); err != nil {
		return nil, badResponse("%v", err)
	}
	if err := checkStatus(m.Status); err != nil {
		return nil, err
	}
	return &m, nil
}
