package frametest

import (
	"bytes"
	"testing"

	"github.com/roomcast/roomcast/pkg/frame"
)

// RFC 6455 §5.7: a single-frame masked text message containing "Hello".
func TestClientMatchesRFCExample(t *testing.T) {
	got := Client(frame.OpText, true, []byte("Hello"))
	want := []byte{0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58}
	if !bytes.Equal(got, want) {
		t.Fatalf("got % x, want % x", got, want)
	}
}

func TestClientOptions(t *testing.T) {
	for _, tc := range []struct {
		name string
		got  []byte
		want []byte // header only
	}{
		{"RSV bits", Client(frame.OpText, false, nil, RSV1(), RSV2(), RSV3(), Unmasked()), []byte{0x71, 0x00}},
		{"16-bit length", Client(frame.OpBinary, true, make([]byte, 126), Unmasked()), []byte{0x82, 0x7e, 0x00, 0x7e}},
		{"64-bit length", Client(frame.OpBinary, true, nil, Length(1<<16), Unmasked()), []byte{0x82, 0x7f, 0, 0, 0, 0, 0, 1, 0, 0}},
		{"forced 16-bit length", Client(frame.OpText, true, nil, Ext16(), Unmasked()), []byte{0x81, 0x7e, 0, 0}},
		{"key", Client(frame.OpText, true, []byte{0}, Key([4]byte{1, 2, 3, 4})), []byte{0x81, 0x81, 1, 2, 3, 4, 1}},
	} {
		if !bytes.HasPrefix(tc.got, tc.want) {
			t.Errorf("%s: got % x, want prefix % x", tc.name, tc.got, tc.want)
		}
	}
}

func TestCasesWellFormed(t *testing.T) {
	seen := map[string]bool{}
	for _, c := range Cases() {
		switch {
		case c.Name == "" || seen[c.Name]:
			t.Errorf("missing or duplicate name %q", c.Name)
		case len(c.Input) == 0:
			t.Errorf("%s: no input", c.Name)
		case c.Fail && c.Close == 0:
			t.Errorf("%s: Fail without a close code", c.Name)
		case c.Partial && c.Close != 0:
			t.Errorf("%s: Partial and closed", c.Name)
		}
		seen[c.Name] = true
	}
}
