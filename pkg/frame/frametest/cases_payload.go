package frametest

import (
	"bytes"
	"maps"
	"slices"
	"strings"

	"github.com/roomcast/roomcast/pkg/frame"
)

// The payload-level cases: UTF-8, partial input, size limits, permessage-deflate.

func utf8Cases() []Case {
	valid := []string{
		"κόσμε",                                                              // 6.2.x
		"\u0080", "\u07ff", "\u0800", "\ud7ff", "\ue000", "\ufffd", "\uffff", // boundaries, 6.3–6.5
		"\U00010000", "\U0010ffff",
	}
	var in []byte
	var echo []Message
	for _, s := range valid {
		in = append(in, txt(s)...)
		echo = append(echo, Text(s))
	}
	invalid := map[string]string{
		"byte FF":                    "a\xff",
		"stray continuation":         "a\x80b",
		"overlong C0 AF":             "\xc0\xaf",
		"overlong E0 80 AF":          "\xe0\x80\xaf",
		"overlong F0 80 80 AF":       "\xf0\x80\x80\xaf",
		"surrogate ED A0 80":         "\xed\xa0\x80",
		"above U+10FFFF F4 90 80 80": "\xf4\x90\x80\x80",
		"F5 lead":                    "\xf5\x80\x80\x80",
		"truncated at message end":   "ab\xe2\x82",
	}
	cs := []Case{{Name: "utf8/valid boundaries", Input: in, Echo: echo}}
	for _, name := range slices.Sorted(maps.Keys(invalid)) { // 6.3.x–6.22.x
		cs = append(cs, fail("utf8/invalid: "+name, frame.CloseInvalidPayload, txt(invalid[name])))
	}
	autobahn641 := "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xf4\x90\x80\x80\x65\x64\x69\x74\x65\x64"
	cs = append(cs,
		Case{Name: "utf8/binary is not checked", Input: bin([]byte{0xff, 0xc0}), Echo: []Message{Binary([]byte{0xff, 0xc0})}},
		Case{
			Name:  "utf8/invalid in the second fragment",
			Input: Join(txt("ok"), first(frame.OpText, "κό"), cont(true, "\xed\xa0\x80")),
			Echo:  []Message{Text("ok")},
			Close: frame.CloseInvalidPayload, Fail: true,
		},
		// Fail fast: the rest of the frame or message never comes, the server must not
		// wait for it (Autobahn 6.4.1–6.4.4).
		fail("utf8/fails fast inside a frame", frame.CloseInvalidPayload,
			Client(frame.OpText, true, []byte("κόσμε\xed\xa0\x80"), Length(50))),
		fail("utf8/fails fast across fragments", frame.CloseInvalidPayload,
			first(frame.OpText, "ab\xf4"), Client(frame.OpContinuation, true, []byte{0x90}, Length(20))),
		fail("utf8/fails fast in an unfinished message", frame.CloseInvalidPayload,
			first(frame.OpText, autobahn641)),
		fail("utf8/truncated at the end of a fragmented message", frame.CloseInvalidPayload,
			first(frame.OpText, "a\xe2"), cont(false, "\x82"), cont(true, "")),
		Case{
			Name:  "utf8/character split across 3 fragments",
			Input: Join(first(frame.OpText, "\xf0"), cont(false, "\x9f\x98"), cont(true, "\x80")),
			Echo:  []Message{Text("\U0001F600")},
		},
	)
	return cs
}

func partialCases() []Case {
	return []Case{
		{Name: "partial/one header byte", Input: txt("Hello")[:1], Partial: true},
		{Name: "partial/header without mask key", Input: txt("Hello")[:4], Partial: true},
		{Name: "partial/payload", Input: txt("Hello")[:8], Partial: true},
		{Name: "partial/first fragment only", Input: first(frame.OpText, "Hel"), Partial: true},
		{Name: "partial/after a complete message", Input: Join(txt("one"), txt("two")[:3]), Echo: []Message{Text("one")}, Partial: true},
		{Name: "partial/ping payload", Input: ping("ping")[:7], Partial: true},
	}
}

func sizeCases() []Case {
	k := strings.Repeat("k", 1000)
	return []Case{
		{Name: "size/message at the limit", Input: txt(k), MaxMessage: 1000, Echo: []Message{Text(k)}},
		{Name: "size/fragments at the limit", Input: Join(first(frame.OpText, k[:600]), cont(true, k[600:])), MaxMessage: 1000, Echo: []Message{Text(k)}},
		{Name: "size/control frames do not count", Input: Join(first(frame.OpText, k[:600]), ping(k[:100]), cont(true, k[600:])), MaxMessage: 1000, Echo: []Message{Pong([]byte(k[:100])), Text(k)}},
		// Refused at the header: no payload follows, none is needed.
		{Name: "size/frame over the limit", Input: Client(frame.OpText, true, nil, Length(1001)), MaxMessage: 1000, Close: frame.CloseTooLarge, Fail: true},
		{Name: "size/fragments over the limit", Input: Join(first(frame.OpText, k[:600]), Client(frame.OpContinuation, true, nil, Length(401))), MaxMessage: 1000, Close: frame.CloseTooLarge, Fail: true},
		{Name: "size/over the default limit", Input: Client(frame.OpBinary, true, nil, Length(65537)), Close: frame.CloseTooLarge, Fail: true},
		{Name: "size/declared 2^32 bytes", Input: Client(frame.OpBinary, true, nil, Length(1<<32)), Close: frame.CloseTooLarge, Fail: true},
		{Name: "size/declared 2^63-1 bytes", Input: Client(frame.OpBinary, true, nil, Length(1<<63-1)), Close: frame.CloseTooLarge, Fail: true},
		// RFC 6455 §5.2: the most significant bit of a 64-bit length MUST be 0.
		{Name: "size/declared 2^63 bytes", Input: Client(frame.OpBinary, true, nil, Length(1<<63)), Close: frame.CloseProtocolError, Fail: true},
	}
}

func deflateCases() []Case {
	hello := []byte("Hello")
	json := bytes.Repeat([]byte(`{"type":"event","room":"chat","data":{"text":"hi"}}`+"\n"), 1000)
	zjson := Deflate(json)
	k := bytes.Repeat([]byte("k"), 1000)
	d := func(c Case) Case { c.Deflate = true; return c }
	return []Case{
		d(Case{Name: "deflate/text", Input: txt(string(Deflate(hello)), RSV1()), Echo: []Message{Text("Hello")}}),
		// RFC 7692 §7.2.3.1: "Hello" compressed is f2 48 cd c9 c9 07 00.
		d(Case{Name: "deflate/RFC 7692 example", Input: Client(frame.OpText, true, []byte{0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00}, RSV1()), Echo: []Message{Text("Hello")}}),
		d(Case{Name: "deflate/binary", Input: bin(Deflate(seq(3000)), RSV1()), Echo: []Message{Binary(seq(3000))}}),
		d(Case{Name: "deflate/50 KB of JSON", Input: txt(string(zjson), RSV1()), Echo: []Message{Text(string(json))}}),
		d(Case{
			Name:  "deflate/fragmented, RSV1 on the first frame only",
			Input: Join(Client(frame.OpText, false, zjson[:10], RSV1()), Client(frame.OpContinuation, false, zjson[10:20]), Client(frame.OpContinuation, true, zjson[20:])),
			Echo:  []Message{Text(string(json))},
		}),
		d(Case{
			Name:  "deflate/ping between compressed fragments",
			Input: Join(Client(frame.OpText, false, zjson[:10], RSV1()), ping("p"), Client(frame.OpContinuation, true, zjson[10:])),
			Echo:  []Message{Pong([]byte("p")), Text(string(json))},
		}),
		d(Case{Name: "deflate/uncompressed message", Input: txt("plain"), Echo: []Message{Text("plain")}}),
		d(Case{
			Name:  "deflate/messages are independent (no context takeover)",
			Input: Join(txt(string(Deflate(hello)), RSV1()), txt(string(Deflate(hello)), RSV1()), txt("plain")),
			Echo:  []Message{Text("Hello"), Text("Hello"), Text("plain")},
		}),
		d(Case{Name: "deflate/empty message", Input: Client(frame.OpText, true, []byte{0x00}, RSV1()), Echo: []Message{Text("")}}),
		d(Case{Name: "deflate/ends with a final block", Input: txt(string(DeflateFinal(hello)), RSV1()), Echo: []Message{Text("Hello")}}),
		d(Case{Name: "deflate/at the limit", Input: txt(string(Deflate(k)), RSV1()), MaxMessage: 1000, Echo: []Message{Text(string(k))}}),
		d(Case{Name: "deflate/inflates over the limit", Input: txt(string(Deflate(append(k, 'k'))), RSV1()), MaxMessage: 1000, Close: frame.CloseTooLarge, Fail: true}),
		d(Case{Name: "deflate/zip bomb", Input: bin(Deflate(make([]byte, 4<<20)), RSV1()), Close: frame.CloseTooLarge, Fail: true}),
		d(Case{Name: "deflate/invalid UTF-8 once inflated", Input: txt(string(Deflate([]byte("ok\xed\xa0\x80"))), RSV1()), Close: frame.CloseInvalidPayload, Fail: true}),
		// BFINAL=1 with the reserved block type 11.
		d(Case{Name: "deflate/corrupt data", Input: Client(frame.OpBinary, true, []byte{0x07, 0x00}, RSV1()), Close: frame.CloseInvalidPayload, Fail: true}),
		d(Case{Name: "deflate/compressed frame over the limit", Input: Client(frame.OpBinary, true, nil, RSV1(), Length(1<<40)), Close: frame.CloseTooLarge, Fail: true}),
	}
}
