package protocols

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"google.golang.org/protobuf/proto"

	"github.com/kithnet/kith/protocols/pb"
)

// Framing errors. ReadMsg returns io.EOF only when the stream ended cleanly
// between two frames.
var (
	ErrFrameTooLarge = errors.New("protocols: frame exceeds the size limit")
	ErrTruncated     = errors.New("protocols: stream ended inside a frame")
	ErrUndecodable   = errors.New("protocols: frame is not a valid message")
)

// Reader reads uvarint-length-delimited protobuf frames, refusing any frame
// longer than its limit before reading it.
type Reader struct {
	r       *bufio.Reader
	max     int
	buf     []byte
	reserve func(n int) error
}

// SetReserve makes the reader ask reserve for n more bytes before its
// buffer grows by n to hold a frame, so that a stream holds memory in
// proportion to the frames it carries, not to the cap. A refusal fails
// the read with UNAVAILABLE.
func (r *Reader) SetReserve(reserve func(n int) error) { r.reserve = reserve }

// NewReader returns a Reader of frames at most max bytes long.
func NewReader(r io.Reader, max int) *Reader {
	return NewReaderSize(r, max, 4096)
}

// NewReaderSize is NewReader with a read buffer of size bytes: a stream
// that lives for hours and carries small frames (a relay's inbox session
// reading acknowledgements) need not keep 4 KiB for each.
func NewReaderSize(r io.Reader, max, size int) *Reader {
	return &Reader{r: bufio.NewReaderSize(r, size), max: max}
}

// ReadFrame returns the next frame's bytes. The slice is valid until the
// next call.
func (r *Reader) ReadFrame() ([]byte, error) {
	n, err := binary.ReadUvarint(r.r)
	if err != nil {
		if errors.Is(err, io.EOF) {
			return nil, io.EOF
		}
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, ErrTruncated
		}
		return nil, fmt.Errorf("%w: length prefix: %w", ErrUndecodable, err)
	}
	if n > uint64(r.max) {
		return nil, fmt.Errorf("%w: %d bytes, limit %d", ErrFrameTooLarge, n, r.max)
	}
	if cap(r.buf) < int(n) {
		if r.reserve != nil {
			if err := r.reserve(int(n) - cap(r.buf)); err != nil {
				return nil, Errorf(pb.Status_UNAVAILABLE, "no memory for a frame of %d bytes now; retry", n)
			}
		}
		r.buf = make([]byte, n)
	}
	b := r.buf[:n]
	if _, err := io.ReadFull(r.r, b); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, ErrTruncated
		}
		return nil, err
	}
	return b, nil
}

// Buffered reports whether bytes of a next frame are already read from
// the stream, so that a reader can tell a burst from the end of one.
func (r *Reader) Buffered() bool { return r.r.Buffered() > 0 }

// ReadMsg reads the next frame into m.
func (r *Reader) ReadMsg(m proto.Message) error {
	b, err := r.ReadFrame()
	if err != nil {
		return err
	}
	if err := proto.Unmarshal(b, m); err != nil {
		return fmt.Errorf("%w: %w", ErrUndecodable, err)
	}
	return nil
}

// AppendFrame appends m as a frame to dst.
func AppendFrame(dst []byte, m proto.Message) ([]byte, error) {
	size := proto.Size(m)
	dst = binary.AppendUvarint(dst, uint64(size))
	return proto.MarshalOptions{}.MarshalAppend(dst, m)
}

// WriteFrame writes payload, already encoded, as one frame in one Write
// call.
func WriteFrame(w io.Writer, payload []byte) error {
	b := make([]byte, 0, binary.MaxVarintLen64+len(payload))
	b = binary.AppendUvarint(b, uint64(len(payload)))
	_, err := w.Write(append(b, payload...))
	return err
}

// WriteMsg writes m as one frame, in one Write call.
func WriteMsg(w io.Writer, m proto.Message) error {
	b, err := AppendFrame(nil, m)
	if err != nil {
		return err
	}
	_, err = w.Write(b)
	return err
}
