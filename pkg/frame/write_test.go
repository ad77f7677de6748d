package frame_test

import (
	"bytes"
	"encoding/hex"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/roomcast/roomcast/pkg/frame"
)

func TestAppendHeader(t *testing.T) {
	for _, tc := range []struct {
		fin, rsv1 bool
		op        frame.Opcode
		n         int
		want      string
	}{
		{true, false, frame.OpText, 0, "8100"},
		{true, false, frame.OpText, 125, "817d"},
		{true, false, frame.OpBinary, 126, "827e007e"},
		{true, true, frame.OpText, 0xFFFF, "c17effff"},
		{false, false, frame.OpText, 0x10000, "017f0000000000010000"},
		{true, false, frame.OpContinuation, 1 << 40, "807f0000010000000000"},
		{true, false, frame.OpPong, 5, "8a05"},
	} {
		got := hex.EncodeToString(frame.AppendHeader(nil, tc.fin, tc.rsv1, tc.op, tc.n))
		if got != tc.want {
			t.Errorf("AppendHeader(%v, %v, %v, %d) = %s, want %s", tc.fin, tc.rsv1, tc.op, tc.n, got, tc.want)
		}
		if len(got)/2 != frame.HeaderSize(tc.n) {
			t.Errorf("HeaderSize(%d) = %d, header is %d bytes", tc.n, frame.HeaderSize(tc.n), len(got)/2)
		}
	}
}

func TestAppendFrame(t *testing.T) {
	got := frame.AppendFrame([]byte("prefix"), frame.OpText, []byte("Hello"))
	if want := append([]byte("prefix"), 0x81, 0x05, 'H', 'e', 'l', 'l', 'o'); !bytes.Equal(got, want) {
		t.Errorf("got % x, want % x", got, want)
	}
}

func TestAppendClose(t *testing.T) {
	for _, tc := range []struct {
		code   uint16
		reason string
		want   string
	}{
		{frame.CloseNormal, "", "8802" + "03e8"},
		{frame.CloseGoingAway, "drain", "8807" + "03e9" + hex.EncodeToString([]byte("drain"))},
		{frame.CloseSlowConsumer, "", "8802" + "0fa9"},
		{frame.CloseNoStatus, "ignored", "8800"},
		{frame.CloseAbnormal, "", "8800"},
		{0, "", "8800"},
	} {
		if got := hex.EncodeToString(frame.AppendClose(nil, tc.code, tc.reason)); got != tc.want {
			t.Errorf("AppendClose(%d, %q) = %s, want %s", tc.code, tc.reason, got, tc.want)
		}
	}
	// A long reason is cut to fit a control frame, between characters.
	long := strings.Repeat("é", 100) // 200 bytes
	f := frame.AppendClose(nil, frame.ClosePolicy, long)
	if len(f) > 2+125 || f[1] > 125 {
		t.Fatalf("close frame payload %d bytes, over 125", f[1])
	}
	if reason := f[4:]; !utf8.Valid(reason) || len(reason) != 122 {
		t.Errorf("reason cut to %d bytes, valid UTF-8 %v; want 122 and valid", len(reason), utf8.Valid(reason))
	}
}

func TestValidCloseCode(t *testing.T) {
	valid := map[uint16]bool{}
	for c := 1000; c <= 1003; c++ {
		valid[uint16(c)] = true
	}
	for c := 1007; c <= 1014; c++ {
		valid[uint16(c)] = true
	}
	for c := 3000; c <= 4999; c++ {
		valid[uint16(c)] = true
	}
	for c := 0; c <= 0xFFFF; c++ {
		if got := frame.ValidCloseCode(uint16(c)); got != valid[uint16(c)] {
			t.Errorf("ValidCloseCode(%d) = %v", c, got)
		}
	}
}

func TestOpcodeString(t *testing.T) {
	if frame.OpText.String() != "text" || frame.Opcode(3).String() != "opcode(3)" {
		t.Error(frame.OpText.String(), frame.Opcode(3).String())
	}
}
