package room

import (
	"bytes"
	"encoding/json"
	"strconv"
	"testing"
	"unicode/utf8"
)

// Fuzz targets of the wire protocol's pure functions: decoding what a
// client sends, and encoding what the node sends back, including bodies
// and headers that any NATS publisher controls. Every server message must
// be one line of valid JSON (the node batches messages with '\n') in valid
// UTF-8 (RFC 6455 §8.1: a browser fails a text frame that is not, with
// 1007, and drops the whole connection). Seeds are in f.Add and in
// testdata/fuzz/<target>.

// FuzzDecodeRequest decodes arbitrary client text and encodes every answer
// the node may build from the result.
func FuzzDecodeRequest(f *testing.F) {
	for _, s := range []string{
		`{"type":"join","room":"lobby","id":1,"meta":{"mood":"ok"}}`,
		`{"type":"publish","room":"a.b","event":"chat","data":{"text":"hi"},"echo":false,"id":7}`,
		`{"type":"rpc","method":"echo","data":[1,2,3],"id":18446744073709551615}`,
		`{"type":"ping"}`,
		`{"type":"publish","room":"r","event":"e","data":` + "\n" + `{ "a" : 1 }}`,
		`{"type":"join","id":-1}`,
		`{"type":"join","id":1.5}`,
		`{"type":"join","id":"1"}`,
		`{"type":"publish","echo":"no"}`,
		`{"type":1}`,
		`[]`,
		`"join"`,
		`{`,
		`null`,
		`{"type":"publish","room":"\u0000\n","event":"\u2028"}`,
		"{\"type\":\"publish\",\"room\":\"\xff\"}",
		`{"id":3,"type":"join","room":{}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, text []byte) {
		if !utf8.Valid(text) {
			return // the frame parser closes the connection with 1007 first
		}
		var req request
		err := decodeRequest(text, &req)
		if err != nil {
			// Receive answers every undecodable message with this.
			msg := err.Error()
			if msg == "" {
				t.Fatalf("decodeRequest(%q): empty error message", text)
			}
			m := checkServerMessage(t, appendError(nil, req.ID, CodeBadRequest, msg))
			if m["type"] != "error" || m["code"] != CodeBadRequest || m["message"] != sanitized(msg) {
				t.Fatalf("error for %q decodes as %v", text, m)
			}
			checkID(t, m, req.ID)
			return
		}
		ack := checkServerMessage(t, appendAck(nil, req.ID))
		checkID(t, ack, req.ID)
		checkID(t, checkServerMessage(t, appendPong(nil, req.ID)), req.ID)
		checkID(t, checkServerMessage(t, appendReply(nil, req.ID, req.Data)), req.ID)
		if req.Room != "" && req.Event != "" {
			checkEvent2(t, req.Room, req.Event, "session-1", req.Data)
		}
		if meta := compactJSON(req.Meta); meta != nil && (!json.Valid(meta) || bytes.ContainsAny(meta, "\r\n")) {
			t.Fatalf("compactJSON(%q) = %q: not one line of JSON", req.Meta, meta)
		}
		if checkEvent(req.Event) == nil {
			for i := 0; i < len(req.Event); i++ {
				if c := req.Event[i]; c < 0x20 || c == 0x7f {
					t.Fatalf("checkEvent accepted %q, with control byte %#x (it goes into a NATS header)", req.Event, c)
				}
			}
		}
	})
}

// FuzzEncodeEvent encodes room messages as any NATS publisher may send
// them: arbitrary body, arbitrary Rc-Event and Rc-From headers.
func FuzzEncodeEvent(f *testing.F) {
	f.Add("lobby", "chat", "s1", []byte(`{"text":"hi"}`))
	f.Add("lobby", "message", "", []byte(`plain text`))
	f.Add("lobby", "message", "", []byte(`"quoted"`))
	f.Add("lobby", "e", "", []byte(""))
	f.Add("lobby", "e", "", []byte(" \n\t"))
	f.Add("lobby", "e\r\nX-Injected: 1", "", []byte("{\n \"a\": [1,\r\n2]\n}"))
	f.Add("a.b", "\x00", "\xff", []byte("line1\nline2"))
	f.Add("a.b", "e", "", []byte("\xff\xfe"))
	f.Add("a.b", "e", "", []byte("\"\xff\""))
	f.Add("a.b", "e", "", []byte("{\"name\":\"caf\xe9\"}"))
	f.Add("a.b", "e", "", []byte("\"\u2028\u2029\""))
	f.Fuzz(func(t *testing.T, room, event, from string, data []byte) {
		if room == "" || event == "" {
			return // the node never encodes these (room from the subject, event defaulted)
		}
		checkEvent2(t, room, event, from, data)
	})
}

// checkEvent2 encodes an event and checks that clients read back exactly
// what was meant: the strings (invalid UTF-8 replaced), and the data as
// JSON when it is JSON, as a string otherwise, null when blank.
func checkEvent2(t *testing.T, room, event, from string, data []byte) {
	t.Helper()
	m := checkServerMessage(t, appendEvent(nil, room, event, from, data))
	if m["type"] != "event" || m["room"] != sanitized(room) || m["event"] != sanitized(event) {
		t.Fatalf("event(%q, %q) decodes as %v", room, event, m)
	}
	if got, _ := m["from"].(string); got != sanitized(from) {
		t.Fatalf("from %q decodes as %q", from, got)
	}
	var got struct {
		Data json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(appendEvent(nil, room, event, from, data), &got); err != nil {
		t.Fatal(err)
	}
	switch {
	case len(bytes.TrimSpace(data)) == 0:
		if string(got.Data) != "null" {
			t.Fatalf("blank data %q arrives as %s, want null", data, got.Data)
		}
	case json.Valid(data):
		var want, have any
		_ = json.Unmarshal(data, &want)
		_ = json.Unmarshal(got.Data, &have)
		if !jsonEqual(want, have) {
			t.Fatalf("JSON data %q arrives as %s", data, got.Data)
		}
	default:
		var s string
		if err := json.Unmarshal(got.Data, &s); err != nil || s != sanitized(string(data)) {
			t.Fatalf("non-JSON data %q arrives as %s, want the string %q", data, got.Data, sanitized(string(data)))
		}
	}
}

// checkServerMessage asserts that b is one server message as the wire
// protocol promises it, and returns it decoded.
func checkServerMessage(t *testing.T, b []byte) map[string]any {
	t.Helper()
	if !utf8.Valid(b) {
		t.Fatalf("server message is not valid UTF-8 (a browser closes the connection with 1007): %q", b)
	}
	if bytes.ContainsAny(b, "\r\n") {
		t.Fatalf("server message spans lines (it would split a batched frame): %q", b)
	}
	// UseNumber: ids go up to 2^64-1, beyond what a float64 holds.
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil || dec.More() {
		t.Fatalf("server message is not a JSON object: %v: %q", err, b)
	}
	return m
}

// checkID asserts that m echoes id exactly, or has none when id is unset.
func checkID(t *testing.T, m map[string]any, id reqID) {
	t.Helper()
	got, ok := m["id"]
	switch {
	case !id.set && ok:
		t.Fatalf("message %v has an id the request did not carry", m)
	case id.set && got != json.Number(strconv.FormatUint(id.n, 10)):
		t.Fatalf("message %v does not echo id %d", m, id.n)
	}
}

// sanitized is what a client reads back for s: each byte of invalid UTF-8
// becomes U+FFFD, as appendString and the JSON decoder both do.
func sanitized(s string) string { return string([]rune(s)) }

// jsonEqual compares decoded JSON values; numbers are compared as text of
// their float64 value, which is what both sides decoded.
func jsonEqual(a, b any) bool {
	ab, err1 := json.Marshal(a)
	bb, err2 := json.Marshal(b)
	return err1 == nil && err2 == nil && bytes.Equal(ab, bb)
}
