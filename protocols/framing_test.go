package protocols

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/kithnet/kith/protocols/pb"
)

func TestFramingRoundTrip(t *testing.T) {
	msgs := []*pb.ShareResponse{
		{Status: pb.Status_OK, Text: "one"},
		{Status: pb.Status_REFUSED, Failures: []*pb.Failure{{Peer: []byte("x"), Reason: pb.Reason_EXPIRED}}},
		{},
		{Status: pb.Status_OK, Text: strings.Repeat("longer than the read buffer ", 20)},
	}
	for _, size := range []int{4096, 16} { // 16: frames larger than the buffer
		var buf bytes.Buffer
		for _, m := range msgs {
			if err := WriteMsg(&buf, m); err != nil {
				t.Fatal(err)
			}
		}
		r := NewReaderSize(&buf, 1024, size)
		for i, want := range msgs {
			var got pb.ShareResponse
			if err := r.ReadMsg(&got); err != nil {
				t.Fatalf("buffer %d, frame %d: %v", size, i, err)
			}
			if !proto.Equal(&got, want) {
				t.Fatalf("buffer %d, frame %d: got %v, want %v", size, i, &got, want)
			}
		}
		var m pb.ShareResponse
		if err := r.ReadMsg(&m); err != io.EOF {
			t.Fatalf("buffer %d, after last frame: %v, want io.EOF", size, err)
		}
	}
}

// TestWriteFrameMatchesWriteMsg: bytes already encoded go out framed
// exactly as WriteMsg frames the message they encode, in one Write.
func TestWriteFrameMatchesWriteMsg(t *testing.T) {
	for _, m := range []*pb.ShareResponse{
		{Status: pb.Status_OK, Text: strings.Repeat("x", 300)}, // a two-byte length
		{Status: pb.Status_REFUSED},
	} {
		raw, err := proto.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		var a, b countingWriter
		if err := WriteMsg(&a, m); err != nil {
			t.Fatal(err)
		}
		if err := WriteFrame(&b, raw); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(a.buf.Bytes(), b.buf.Bytes()) || b.writes != 1 {
			t.Fatalf("WriteFrame wrote %x in %d writes, WriteMsg %x", b.buf.Bytes(), b.writes, a.buf.Bytes())
		}
		frame, err := NewReader(&b.buf, 1<<10).ReadFrame()
		if err != nil || !bytes.Equal(frame, raw) {
			t.Fatalf("read back %x, %v", frame, err)
		}
	}
}

type countingWriter struct {
	buf    bytes.Buffer
	writes int
}

func (w *countingWriter) Write(p []byte) (int, error) {
	w.writes++
	return w.buf.Write(p)
}

func TestFramingRefusals(t *testing.T) {
	frame := func(n uint64, body []byte) []byte { return append(binary.AppendUvarint(nil, n), body...) }
	tests := []struct {
		name string
		in   []byte
		want error
	}{
		{"announces more than the limit", frame(1<<20, nil), ErrFrameTooLarge},
		{"announces 2^63", frame(1<<63, nil), ErrFrameTooLarge},
		{"ends inside the body", frame(10, []byte("abc")), ErrTruncated},
		{"ends inside the length", []byte{0x80}, ErrTruncated},
		{"length overflows a varint", bytes.Repeat([]byte{0xff}, 11), ErrUndecodable},
		{"body is not protobuf", frame(3, []byte{0xff, 0xff, 0xff}), ErrUndecodable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var m pb.ShareResponse
			err := NewReader(bytes.NewReader(tt.in), 1024).ReadMsg(&m)
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
		})
	}
}

// TestReaderReserves: a reader asks for memory as its buffer grows, by
// the growth only, and a refusal fails the read with UNAVAILABLE.
func TestReaderReserves(t *testing.T) {
	var stream []byte
	for _, n := range []int{100, 50, 4000} {
		stream, _ = AppendFrame(stream, &pb.Ack{Seqs: make([]uint64, n)})
	}
	var asked []int
	rd := NewReader(bytes.NewReader(stream), 1<<20)
	rd.SetReserve(func(n int) error {
		asked = append(asked, n)
		if len(asked) == 2 {
			return errors.New("no memory")
		}
		return nil
	})
	if _, err := rd.ReadFrame(); err != nil {
		t.Fatal(err)
	}
	if _, err := rd.ReadFrame(); err != nil || len(asked) != 1 {
		t.Fatalf("a smaller frame asked again: %v %v", err, asked)
	}
	if _, err := rd.ReadFrame(); StatusOf(err) != pb.Status_UNAVAILABLE {
		t.Fatalf("a refused reservation: %v", err)
	}
	if len(asked) != 2 || asked[1] >= 4000+4 || asked[1] <= 4000-100 {
		t.Fatalf("asked %v: the second should be the growth only", asked)
	}
}
