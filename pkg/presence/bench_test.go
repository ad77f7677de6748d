package presence

import (
	"encoding/json"
	"strconv"
	"testing"

	"github.com/roomcast/roomcast/pkg/bus/bustest"
)

const benchMembers = 10000

func benchMember(i int) Member {
	return Member{Session: "sess" + strconv.Itoa(i), User: "user" + strconv.Itoa(i),
		Meta: json.RawMessage(`{"name":"User ` + strconv.Itoa(i) + `","color":"#a0c4ff"}`), ConnectedAt: 1700000000000 + int64(i)}
}

// BenchmarkSnapshot is the cost of one node's answer for a 10,000-member
// room: encoding it in parts (answering side) and decoding and applying it
// to an empty view (joining side).
func BenchmarkSnapshot(b *testing.B) {
	srv := bustest.RunServer(b)
	tr, err := New(Options{Node: "b", NC: bustest.Connect(b, srv)})
	if err != nil {
		b.Fatal(err)
	}
	members := make([]Member, benchMembers)
	for i := range members {
		members[i] = benchMember(i)
	}
	b.Run("encode", func(b *testing.B) {
		b.ReportAllocs()
		var size int
		for b.Loop() {
			s := snapshot{Node: "b", Inc: 1, Epoch: 1, Seq: 10000, Nodes: []string{"a", "b"}}
			size = 0
			for _, p := range tr.split(&s, members) {
				size += len(p)
			}
		}
		b.ReportMetric(float64(size), "bytes")
	})
	s := snapshot{Node: "b", Inc: 1, Epoch: 1, Seq: 10000}
	parts := tr.split(&s, members)
	b.Run("apply", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			a := &assembly{parts: map[int][]Member{}, last: -1}
			for _, p := range parts {
				var s snapshot
				if err := json.Unmarshal(p, &s); err != nil {
					b.Fatal(err)
				}
				a.head = s
				a.parts[s.Part] = s.Members
				if s.Last {
					a.last = s.Part
				}
			}
			v := newView("a")
			var out []change
			v.applySnapshot(&a.head, a.members(), 0, &out)
			if v.count != benchMembers {
				b.Fatalf("count %d", v.count)
			}
		}
		b.ReportMetric(float64(len(parts)), "parts")
	})
}

// BenchmarkDelta is the cost of one join plus one leave: encode on the
// sender, decode and apply on a receiver, in rooms of 10 and of 10,000
// members. The two must cost the same: no list is sent or rebuilt.
func BenchmarkDelta(b *testing.B) {
	for _, size := range []int{10, benchMembers} {
		b.Run(strconv.Itoa(size), func(b *testing.B) { benchDelta(b, size) })
	}
}

func benchDelta(b *testing.B, size int) {
	v := newView("a")
	var out []change
	s := &snapshot{Node: "b", Inc: 1, Epoch: 1, Seq: 1}
	members := make([]Member, size)
	for i := range members {
		members[i] = benchMember(i)
	}
	v.applySnapshot(s, members, 0, &out)
	seq := uint64(1)
	m := benchMember(size)
	b.ReportAllocs()
	var joinSize, leaveSize int
	for b.Loop() {
		out = out[:0]
		for _, d := range []delta{
			{Op: opJoin, Node: "b", Inc: 1, Epoch: 1, Member: &m},
			{Op: opLeave, Node: "b", Inc: 1, Epoch: 1, Session: m.Session},
		} {
			seq++
			d.Seq = seq
			data, err := json.Marshal(&d)
			if err != nil {
				b.Fatal(err)
			}
			if d.Op == opJoin {
				joinSize = len(data)
			} else {
				leaveSize = len(data)
			}
			var in delta
			if err := json.Unmarshal(data, &in); err != nil {
				b.Fatal(err)
			}
			if o := v.apply(&in, 0, &out); o.resync {
				b.Fatal("resync")
			}
		}
		if len(out) != 2 {
			b.Fatalf("changes %d", len(out))
		}
	}
	b.ReportMetric(float64(joinSize), "join-bytes")
	b.ReportMetric(float64(leaveSize), "leave-bytes")
}
