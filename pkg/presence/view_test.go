package presence

import (
	"fmt"
	"slices"
	"strings"
	"testing"
)

func mem(session string) Member {
	return Member{Session: session, User: "u-" + session, ConnectedAt: 1}
}

func join(node string, inc, epoch, seq uint64, session string) *delta {
	m := mem(session)
	return &delta{Op: opJoin, Node: node, Inc: inc, Epoch: epoch, Seq: seq, Member: &m}
}

func leave(node string, inc, epoch, seq uint64, session string) *delta {
	return &delta{Op: opLeave, Node: node, Inc: inc, Epoch: epoch, Seq: seq, Session: session}
}

// sessions lists the view's members as "session" strings, sorted.
func sessions(v *view) []string {
	var s []string
	for _, m := range v.members() {
		s = append(s, m.Session)
	}
	slices.Sort(s)
	return s
}

func changes(out []change) string {
	var b strings.Builder
	for _, c := range out {
		fmt.Fprintf(&b, "%s:%s:%d ", map[changeKind]string{joined: "+", left: "-", updated: "~"}[c.kind], c.m.Session, c.count)
	}
	return strings.TrimSpace(b.String())
}

func TestViewInOrder(t *testing.T) {
	v := newView("self")
	var out []change
	v.setLocal(mem("l1"), &out)
	for _, d := range []*delta{
		join("B", 1, 1, 1, "b1"),
		join("B", 1, 1, 2, "b2"),
		leave("B", 1, 1, 3, "b1"),
		{Op: opUpdate, Node: "B", Inc: 1, Epoch: 1, Seq: 4, Member: &Member{Session: "b2", Meta: []byte(`{"x":1}`)}},
	} {
		if o := v.apply(d, 0, &out); o.resync {
			t.Fatalf("resync on %+v", d)
		}
	}
	if got := changes(out); got != "+:l1:1 +:b1:2 +:b2:3 -:b1:2 ~:b2:2" {
		t.Fatalf("changes: %s", got)
	}
	if got := sessions(v); !slices.Equal(got, []string{"b2", "l1"}) || v.count != 2 {
		t.Fatalf("members %v count %d", got, v.count)
	}
	// Our own deltas, echoed by NATS, change nothing.
	out = nil
	v.apply(join("self", 1, 1, 9, "zz"), 0, &out)
	if len(out) != 0 {
		t.Fatalf("own delta applied: %s", changes(out))
	}
}

func TestViewDuplicatesAndStale(t *testing.T) {
	v := newView("self")
	var out []change
	v.apply(join("B", 5, 2, 1, "b1"), 0, &out)
	v.apply(join("B", 5, 2, 2, "b2"), 0, &out)
	out = nil
	for _, d := range []*delta{
		join("B", 5, 2, 1, "b1"),  // duplicate
		join("B", 5, 2, 2, "b2"),  // duplicate
		join("B", 5, 1, 7, "old"), // older epoch
		join("B", 4, 9, 1, "old"), // older incarnation
		leave("B", 4, 9, 2, "b1"), // older incarnation
	} {
		if o := v.apply(d, 0, &out); o.resync {
			t.Fatalf("resync on %+v", d)
		}
	}
	if len(out) != 0 || !slices.Equal(sessions(v), []string{"b1", "b2"}) {
		t.Fatalf("changes %s members %v", changes(out), sessions(v))
	}
}

func TestViewGapResync(t *testing.T) {
	v := newView("self")
	var out []change
	v.apply(join("B", 1, 1, 1, "b1"), 0, &out)
	// seq 2 is lost; 3 and 4 arrive.
	if o := v.apply(join("B", 1, 1, 3, "b3"), 0, &out); !o.resync {
		t.Fatal("gap not detected")
	}
	if o := v.apply(leave("B", 1, 1, 4, "b1"), 0, &out); o.resync {
		t.Fatal("second resync asked while one is pending")
	}
	// A digest while syncing does not ask again.
	if o := v.apply(&delta{Op: opDigest, Node: "B", Inc: 1, Epoch: 1, Seq: 4, Count: 2}, 0, &out); o.resync {
		t.Fatal("digest asked again")
	}
	if got := sessions(v); !slices.Equal(got, []string{"b1"}) {
		t.Fatalf("buffered deltas applied early: %v", got)
	}
	// The node answers as of seq 3 (the leave at 4 came after its answer).
	out = nil
	s := &snapshot{Node: "B", Inc: 1, Epoch: 1, Seq: 3}
	if o := v.applySnapshot(s, []Member{mem("b1"), mem("b2"), mem("b3")}, 0, &out); o.resync {
		t.Fatal("resync after snapshot")
	}
	if got := changes(out); got != "+:b2:2 +:b3:3 -:b1:2" {
		t.Fatalf("changes: %s", got)
	}
	if got := sessions(v); !slices.Equal(got, []string{"b2", "b3"}) {
		t.Fatalf("members: %v", got)
	}
	// A gap in the replayed deltas asks again.
	v.apply(join("B", 1, 1, 7, "b7"), 0, &out)
	s = &snapshot{Node: "B", Inc: 1, Epoch: 1, Seq: 4}
	v.nodes["B"].pending = append(v.nodes["B"].pending, *join("B", 1, 1, 6, "b6"))
	if o := v.applySnapshot(s, []Member{mem("b2"), mem("b3")}, 0, &out); !o.resync {
		t.Fatal("gap after snapshot not detected")
	}
}

func TestViewIncarnationChange(t *testing.T) {
	v := newView("self")
	var out []change
	v.apply(join("B", 1, 1, 1, "b1"), 0, &out)
	v.apply(join("B", 1, 1, 2, "b2"), 0, &out)
	out = nil
	// B restarted; its first delta in the new incarnation starts an era.
	o := v.apply(join("B", 2, 1, 1, "n1"), 0, &out)
	if o.resync || !o.fresh {
		t.Fatalf("outcome %+v", o)
	}
	if got := changes(out); got != "-:b1:1 -:b2:0 +:n1:1" {
		t.Fatalf("changes: %s", got)
	}
	// A restart seen mid-era asks for a resync and drops the old members.
	out = nil
	if o := v.apply(join("B", 3, 4, 5, "x"), 0, &out); !o.resync {
		t.Fatal("no resync for a new incarnation at seq 5")
	}
	if got := changes(out); got != "-:n1:0" {
		t.Fatalf("changes: %s", got)
	}
	if v.nodes["B"].gen != (gen{3, 4}) {
		t.Fatalf("gen %v", v.nodes["B"].gen)
	}
	// Nothing answers for incarnation 3: B is gone again.
	v.dropIncarnation("B", 3, &out)
	if _, ok := v.nodes["B"]; ok {
		t.Fatal("node kept after its incarnation vanished")
	}
}

func TestViewNewEpoch(t *testing.T) {
	v := newView("self")
	var out []change
	v.apply(join("B", 1, 1, 1, "b1"), 0, &out)
	// B's leave of b1 (seq 2, its last member) is lost; B comes back to the
	// room in a new epoch.
	out = nil
	if o := v.apply(join("B", 1, 2, 1, "b9"), 0, &out); o.resync {
		t.Fatal("resync on a clean new epoch")
	}
	if got := changes(out); got != "-:b1:0 +:b9:1" {
		t.Fatalf("changes: %s", got)
	}
}

func TestViewDigest(t *testing.T) {
	v := newView("self")
	var out []change
	v.apply(join("B", 1, 1, 1, "b1"), 0, &out)
	if o := v.apply(&delta{Op: opDigest, Node: "B", Inc: 1, Epoch: 1, Seq: 1, Count: 1}, 5, &out); o.resync {
		t.Fatal("in-step digest asked for resync")
	}
	if v.nodes["B"].heard != 5 {
		t.Fatal("digest did not refresh heard")
	}
	if o := v.apply(&delta{Op: opDigest, Node: "B", Inc: 1, Epoch: 1, Seq: 2, Count: 2}, 6, &out); !o.resync {
		t.Fatal("digest ahead of us did not ask for resync")
	}
	if o := v.apply(&delta{Op: opDigest, Node: "C", Inc: 1, Epoch: 1, Seq: 3, Count: 1}, 6, &out); !o.resync {
		t.Fatal("digest from an unknown node did not ask for resync")
	}
	// The unknown node's buffered join applies after its snapshot.
	v.apply(join("C", 1, 1, 4, "c4"), 6, &out)
	v.applySnapshot(&snapshot{Node: "C", Inc: 1, Epoch: 1, Seq: 3}, []Member{mem("c1")}, 6, &out)
	if got := sessions(v); !slices.Equal(got, []string{"b1", "c1", "c4"}) {
		t.Fatalf("members: %v", got)
	}
}

func TestViewSealedAndBye(t *testing.T) {
	v := newView("self")
	var out []change
	v.apply(join("B", 1, 3, 1, "b1"), 0, &out)
	v.apply(join("B", 1, 3, 3, "b3"), 0, &out) // gap: syncing
	// B has nobody left: it answers empty and sealed at its epoch counter.
	v.applySnapshot(&snapshot{Node: "B", Inc: 1, Epoch: 5, Seq: sealed}, nil, 0, &out)
	if len(sessions(v)) != 0 {
		t.Fatalf("members after sealed answer: %v", sessions(v))
	}
	// Late deltas of sealed eras change nothing; a new era does.
	v.apply(join("B", 1, 3, 2, "late"), 0, &out)
	v.apply(join("B", 1, 5, 9, "late"), 0, &out)
	if len(sessions(v)) != 0 {
		t.Fatalf("late delta applied: %v", sessions(v))
	}
	v.apply(join("B", 1, 6, 1, "b6"), 0, &out)
	v.apply(join("C", 1, 1, 1, "c1"), 0, &out)
	out = nil
	v.apply(&delta{Op: opBye, Node: "B", Inc: 1, Epoch: 6, Seq: 2}, 0, &out)
	if got := changes(out); got != "-:b6:1" {
		t.Fatalf("bye: %s", got)
	}
	v.apply(join("B", 1, 6, 2, "dup"), 0, &out)
	if got := sessions(v); !slices.Equal(got, []string{"c1"}) {
		t.Fatalf("members: %v", got)
	}
}

func TestViewExpireAndDrop(t *testing.T) {
	v := newView("self")
	var out []change
	v.setLocal(mem("l"), &out)
	v.apply(join("B", 1, 1, 1, "b1"), 10, &out)
	v.apply(join("C", 1, 1, 1, "c1"), 20, &out)
	out = nil
	v.expire(15, &out)
	if got := changes(out); got != "-:b1:2" {
		t.Fatalf("expire: %s", got)
	}
	v.dropNode("C", &out)
	v.dropNode("self", &out) // never
	if got := sessions(v); !slices.Equal(got, []string{"l"}) {
		t.Fatalf("members: %v", got)
	}
}

// dropNodeBefore ends a node's run: only a view that knows an older
// incarnation drops it.
func TestViewDropNodeBefore(t *testing.T) {
	v := newView("self")
	var out []change
	v.apply(join("B", 5, 1, 1, "b1"), 0, &out)
	v.apply(join("B", 5, 1, 2, "b2"), 0, &out)
	out = nil
	v.dropNodeBefore("B", 5, &out) // the run it knows: kept
	v.dropNodeBefore("C", 9, &out) // unknown node: nothing
	if len(out) != 0 {
		t.Fatalf("dropped too much: %s", changes(out))
	}
	v.dropNodeBefore("B", 6, &out)
	if got := changes(out); got != "-:b1:1 -:b2:0" {
		t.Fatalf("restart: %s", got)
	}
	// The new run's first delta starts it afresh.
	out = nil
	if o := v.apply(join("B", 6, 1, 1, "b3"), 0, &out); o.resync || changes(out) != "+:b3:1" {
		t.Fatalf("new run: %+v %s", o, changes(out))
	}
}

func TestViewOrdering(t *testing.T) {
	v := newView("self")
	var out []change
	for i, s := range []string{"c", "a", "b"} {
		m := mem(s)
		m.ConnectedAt = int64(10 - i)
		v.setLocal(m, &out)
	}
	m := mem("d")
	m.ConnectedAt = 8
	v.setLocal(m, &out)
	var got []string
	for _, m := range v.members() {
		got = append(got, m.Session)
	}
	if !slices.Equal(got, []string{"b", "d", "a", "c"}) {
		t.Fatalf("order: %v", got)
	}
}
