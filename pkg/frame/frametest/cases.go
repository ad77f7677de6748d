package frametest

import (
	"bytes"
	"fmt"
	"strings"

	"github.com/roomcast/roomcast/pkg/frame"
)

// Cases returns every conformance case, in a stable order, with unique names. Each
// call builds fresh slices: a runner may modify them (frame.Parser.Feed unmasks in
// place).
//
// Groups: text and binary basics, fragmentation, control frames, close codes, reserved
// bits and opcodes, masking, message sequencing, UTF-8, partial input, size limits and
// permessage-deflate. Together they cover every rule of issue 13 item 1; the names
// follow the rule they check, and Autobahn case numbers are given where one exists.
func Cases() []Case {
	var cs []Case
	cs = append(cs, basicCases()...)
	cs = append(cs, fragmentCases()...)
	cs = append(cs, controlCases()...)
	cs = append(cs, closeCases()...)
	cs = append(cs, headerCases()...)
	cs = append(cs, utf8Cases()...)
	cs = append(cs, partialCases()...)
	cs = append(cs, sizeCases()...)
	cs = append(cs, deflateCases()...)
	return cs
}

// Frame shorthands for the case tables.

func txt(s string, opts ...Option) []byte {
	return Client(frame.OpText, true, []byte(s), opts...)
}

func bin(b []byte, opts ...Option) []byte { return Client(frame.OpBinary, true, b, opts...) }

func first(op frame.Opcode, s string) []byte { return Client(op, false, []byte(s)) }

func cont(fin bool, s string) []byte { return Client(frame.OpContinuation, fin, []byte(s)) }

func ping(s string) []byte { return Client(frame.OpPing, true, []byte(s)) }

func pong(s string) []byte { return Client(frame.OpPong, true, []byte(s)) }

// seq returns n bytes counting up from 0, wrapping: every byte value, no UTF-8.
func seq(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i)
	}
	return b
}

// fail is a case where the server fails the connection with code.
func fail(name string, code uint16, input ...[]byte) Case {
	return Case{Name: name, Input: Join(input...), Close: code, Fail: true}
}

func basicCases() []Case {
	long := strings.Repeat("*", 65536)
	return []Case{
		{Name: "text/empty", Input: txt(""), Echo: []Message{Text("")}},                     // 1.1.1
		{Name: "text/hello", Input: txt("Hello"), Echo: []Message{Text("Hello")}},           //
		{Name: "text/125 bytes", Input: txt(long[:125]), Echo: []Message{Text(long[:125])}}, // 1.1.2
		{Name: "text/126 bytes, 16-bit length", Input: txt(long[:126]), Echo: []Message{Text(long[:126])}},
		{Name: "text/65535 bytes", Input: txt(long[:65535]), Echo: []Message{Text(long[:65535])}},
		{Name: "text/65536 bytes, 64-bit length, at default limit", Input: txt(long), Echo: []Message{Text(long)}},
		{Name: "binary/every byte value", Input: bin(seq(256)), Echo: []Message{Binary(seq(256))}}, // 1.2.x
		{Name: "binary/empty", Input: bin(nil), Echo: []Message{Binary(nil)}},
		{Name: "binary/1000 bytes", Input: bin(seq(1000)), Echo: []Message{Binary(seq(1000))}},
		{
			Name:  "text/several messages in one write",
			Input: Join(txt("one"), bin([]byte{2}), txt("three")),
			Echo:  []Message{Text("one"), Binary([]byte{2}), Text("three")},
		},
		{Name: "text/zero masking key", Input: txt("Hello", Key([4]byte{})), Echo: []Message{Text("Hello")}},
		{
			Name:  "text/non-minimal length encodings are accepted",
			Input: Join(txt("Hi", Ext16()), txt("Ho", Ext64())),
			Echo:  []Message{Text("Hi"), Text("Ho")},
		},
	}
}

func fragmentCases() []Case {
	const smile = "\U0001F600" // 4 bytes: F0 9F 98 80
	var split []byte
	var splitEcho []Message
	for i := 1; i < 4; i++ {
		split = append(split, Join(first(frame.OpText, "a"+smile[:i]), cont(true, smile[i:]+"b"))...)
		splitEcho = append(splitEcho, Text("a"+smile+"b"))
	}
	var bytewise [][]byte
	for i, c := range "fragment" {
		bytewise = append(bytewise, Client(frame.OpContinuation, i == 7, []byte{byte(c)}))
	}
	bytewise[0][0] = (bytewise[0][0] &^ 0x0F) | byte(frame.OpText)
	big := seq(65536)
	return []Case{
		{Name: "fragments/text in 2", Input: Join(first(frame.OpText, "Hel"), cont(true, "lo")), Echo: []Message{Text("Hello")}}, // 5.3
		{Name: "fragments/text in 8 one-byte fragments", Input: Join(bytewise...), Echo: []Message{Text("fragment")}},
		{Name: "fragments/binary in 3", Input: Join(Client(frame.OpBinary, false, seq(10)), Client(frame.OpContinuation, false, seq(10)), Client(frame.OpContinuation, true, seq(10))), Echo: []Message{Binary(bytes.Repeat(seq(10), 3))}},
		{Name: "fragments/empty first", Input: Join(first(frame.OpText, ""), cont(true, "abc")), Echo: []Message{Text("abc")}}, // 5.17-ish
		{Name: "fragments/empty middle", Input: Join(first(frame.OpText, "ab"), cont(false, ""), cont(true, "c")), Echo: []Message{Text("abc")}},
		{Name: "fragments/empty last", Input: Join(first(frame.OpText, "abc"), cont(true, "")), Echo: []Message{Text("abc")}},
		{Name: "fragments/all empty", Input: Join(first(frame.OpText, ""), cont(false, ""), cont(true, "")), Echo: []Message{Text("")}},
		{Name: "fragments/binary 64 KiB in 4, at default limit", Input: Join(Client(frame.OpBinary, false, big[:16384]), Client(frame.OpContinuation, false, big[16384:32768]), Client(frame.OpContinuation, false, big[32768:49152]), Client(frame.OpContinuation, true, big[49152:])), Echo: []Message{Binary(big)}},
		{
			Name:  "fragments/ping between fragments", // 5.6
			Input: Join(first(frame.OpText, "Hel"), ping("p"), cont(true, "lo")),
			Echo:  []Message{Pong([]byte("p")), Text("Hello")},
		},
		{
			Name:  "fragments/pong between fragments", // 5.7
			Input: Join(first(frame.OpText, "Hel"), pong("q"), cont(true, "lo")),
			Echo:  []Message{Text("Hello")},
			Pongs: [][]byte{[]byte("q")},
		},
		{
			Name:  "fragments/several pings between fragments",
			Input: Join(first(frame.OpText, "a"), ping("1"), cont(false, "b"), ping("2"), ping("3"), cont(true, "c")),
			Echo:  []Message{Pong([]byte("1")), Pong([]byte("2")), Pong([]byte("3")), Text("abc")},
		},
		{
			Name:  "fragments/close between fragments ends the message unsent",
			Input: Join(first(frame.OpText, "Hel"), CloseFrame(frame.CloseNormal, "")),
			Close: frame.CloseNormal,
		},
		{Name: "fragments/4-byte character split at each position", Input: split, Echo: splitEcho},
		{
			Name:  "fragments/two fragmented messages back to back",
			Input: Join(first(frame.OpText, "a"), cont(true, "b"), first(frame.OpBinary, "c"), cont(true, "d")),
			Echo:  []Message{Text("ab"), Binary([]byte("cd"))},
		},
	}
}

func controlCases() []Case {
	p125 := string(seq(125))
	return []Case{
		{Name: "ping/empty", Input: ping(""), Echo: []Message{Pong(nil)}},                            // 2.1
		{Name: "ping/text payload", Input: ping("Hello"), Echo: []Message{Pong([]byte("Hello"))}},    // 2.2
		{Name: "ping/binary payload, 125 bytes", Input: ping(p125), Echo: []Message{Pong(seq(125))}}, // 2.3, 2.4
		{Name: "ping/several", Input: Join(ping("1"), ping("2")), Echo: []Message{Pong([]byte("1")), Pong([]byte("2"))}},
		{Name: "pong/unsolicited", Input: Join(pong("x"), txt("after")), Echo: []Message{Text("after")}, Pongs: [][]byte{[]byte("x")}}, // 2.7, 2.8
		fail("ping/126 bytes", frame.CloseProtocolError, ping(p125+"x")),                                                               // 2.5
		fail("ping/not FIN", frame.CloseProtocolError, Client(frame.OpPing, false, nil)),                                               // 5.1
		fail("pong/126 bytes", frame.CloseProtocolError, pong(p125+"x")),                                                               //
		fail("pong/not FIN", frame.CloseProtocolError, Client(frame.OpPong, false, nil)),                                               // 5.2
		fail("close/not FIN", frame.CloseProtocolError, Client(frame.OpClose, false, nil)),                                             //
		fail("close/126 bytes", frame.CloseProtocolError, CloseFrame(1000, strings.Repeat("r", 124))),                                  // 7.3.6
		fail("ping/length announced in 16 bits", frame.CloseProtocolError, Client(frame.OpPing, true, []byte("x"), Ext16())),
	}
}

func closeCases() []Case {
	cs := []Case{
		{Name: "close/empty reports no status", Input: Client(frame.OpClose, true, nil), Close: frame.CloseNoStatus},            // 7.3.1
		{Name: "close/1000 with reason", Input: CloseFrame(1000, "bye"), Close: 1000},                                           // 7.3.3
		{Name: "close/123-byte reason", Input: CloseFrame(1000, strings.Repeat("r", 123)), Close: 1000},                         // 7.3.5
		{Name: "close/then text is ignored", Input: Join(CloseFrame(1000, ""), txt("late")), Close: 1000},                       // 7.1.3
		{Name: "close/then ping is ignored", Input: Join(CloseFrame(1000, ""), ping("late")), Close: 1000},                      // 7.1.2
		{Name: "close/then garbage is ignored", Input: Join(CloseFrame(1001, ""), []byte{0xff, 0xff, 0xff}), Close: 1001},       //
		{Name: "close/after a message", Input: Join(txt("hi"), CloseFrame(1000, "")), Echo: []Message{Text("hi")}, Close: 1000}, // 7.1.1
		fail("close/1-byte payload", frame.CloseProtocolError, Client(frame.OpClose, true, []byte{0x03})),                       // 7.3.2
		fail("close/reason not UTF-8", frame.CloseProtocolError, CloseFrame(1000, "\xce\xba\xed\xa0\x80")),                      // 7.5.1
	}
	for _, code := range []uint16{1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 3999, 4000, 4999} { // 7.7.x
		cs = append(cs, Case{Name: fmt.Sprintf("close/valid code %d is echoed", code), Input: CloseFrame(code, "x"), Close: code})
	}
	for _, code := range []uint16{0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535} { // 7.9.x
		cs = append(cs, fail(fmt.Sprintf("close/invalid code %d", code), frame.CloseProtocolError, CloseFrame(code, "")))
	}
	return cs
}

func headerCases() []Case {
	cs := []Case{
		fail("rsv/RSV1 without an extension", frame.CloseProtocolError, txt("x", RSV1())),                                       // 3.1
		fail("rsv/RSV2", frame.CloseProtocolError, txt("x", RSV2())),                                                            // 3.2
		fail("rsv/RSV3", frame.CloseProtocolError, txt("x", RSV3())),                                                            // 3.4
		fail("rsv/RSV1+RSV2+RSV3 on a ping", frame.CloseProtocolError, Client(frame.OpPing, true, nil, RSV1(), RSV2(), RSV3())), // 3.7
		fail("rsv/after a valid message", frame.CloseProtocolError, txt("ok"), bin([]byte{1}, RSV2())),
		{Name: "rsv/RSV2 with deflate", Input: txt("x", RSV2()), Deflate: true, Close: frame.CloseProtocolError, Fail: true},
		{Name: "rsv/RSV1 on a continuation with deflate", Input: Join(Client(frame.OpText, false, Deflate([]byte("ab")), RSV1()), Client(frame.OpContinuation, true, nil, RSV1())), Deflate: true, Close: frame.CloseProtocolError, Fail: true},
		{Name: "rsv/RSV1 on a ping with deflate", Input: Client(frame.OpPing, true, nil, RSV1()), Deflate: true, Close: frame.CloseProtocolError, Fail: true},
		{Name: "rsv/RSV1 on a close with deflate", Input: Client(frame.OpClose, true, nil, RSV1()), Deflate: true, Close: frame.CloseProtocolError, Fail: true},
		fail("mask/unmasked text", frame.CloseProtocolError, txt("Hello", Unmasked())),
		fail("mask/unmasked ping", frame.CloseProtocolError, Client(frame.OpPing, true, nil, Unmasked())),
		fail("mask/unmasked continuation", frame.CloseProtocolError, first(frame.OpText, "a"), Client(frame.OpContinuation, true, []byte("b"), Unmasked())),
		fail("mask/unmasked empty close", frame.CloseProtocolError, Client(frame.OpClose, true, nil, Unmasked())),
		fail("sequence/continuation with no message", frame.CloseProtocolError, cont(true, "x")), // 5.9
		fail("sequence/continuation after a complete message", frame.CloseProtocolError, txt("done"), cont(true, "x")),
		fail("sequence/text during a text message", frame.CloseProtocolError, first(frame.OpText, "a"), txt("b")), // 5.18
		fail("sequence/binary during a text message", frame.CloseProtocolError, first(frame.OpText, "a"), bin([]byte("b"))),
		fail("sequence/text during a binary message after a ping", frame.CloseProtocolError, first(frame.OpBinary, "a"), ping(""), first(frame.OpText, "b")),
	}
	// Give the successful messages before a failure their echoes.
	for i := range cs {
		switch cs[i].Name {
		case "rsv/after a valid message":
			cs[i].Echo = []Message{Text("ok")}
		case "sequence/continuation after a complete message":
			cs[i].Echo = []Message{Text("done")}
		case "sequence/text during a binary message after a ping":
			cs[i].Echo = []Message{Pong(nil)}
		}
	}
	for _, op := range []frame.Opcode{3, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF} { // 4.1.x, 4.2.x
		cs = append(cs, fail(fmt.Sprintf("opcode/reserved %#x", byte(op)), frame.CloseProtocolError, Client(op, true, []byte("x"))))
	}
	cs = append(cs, Case{
		Name:  "opcode/reserved after a message and a ping", // 4.1.3
		Input: Join(txt("ok"), Client(5, true, nil), ping("")),
		Echo:  []Message{Text("ok")},
		Close: frame.CloseProtocolError, Fail: true,
	})
	return cs
}
