package presence

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strconv"
	"testing"
)

// simNode is a remote node's true state in one room, as the simulation
// drives it: the same bookkeeping as Tracker (eras, sequences, sealed
// answers) without NATS.
type simNode struct {
	name    string
	inc     uint64
	epochs  uint64 // epoch counter of this incarnation
	epoch   uint64 // era of the current membership
	seq     uint64
	members map[string]Member
}

func (n *simNode) delta(op string, m *Member, session string) delta {
	n.seq++
	return delta{Op: op, Node: n.name, Inc: n.inc, Epoch: n.epoch, Seq: n.seq, Member: m, Session: session}
}

func (n *simNode) answer() (*snapshot, []Member) {
	if len(n.members) == 0 {
		return &snapshot{Node: n.name, Inc: n.inc, Epoch: n.epochs, Seq: sealed}, nil
	}
	return &snapshot{Node: n.name, Inc: n.inc, Epoch: n.epoch, Seq: n.seq}, sortedMembers(n.members)
}

type simConfig struct {
	nodes, steps   int
	drop, dup      float64 // probability a delivery is lost / repeated
	restart, fail  float64 // probability of a crash per op / a resync timing out
	reorderWindow  int     // deliveries pick among the oldest N queued deltas
	resyncDelayMax int     // steps before a resync is answered
}

type simResync struct {
	node string
	inc  uint64
	due  int
}

// simulate drives random membership changes on cfg.nodes remote nodes and
// delivers their deltas to one view lossily, out of order and duplicated,
// answering resyncs late and sometimes not at all. Then it runs the repair
// that the Tracker runs forever (digests, expiry) and checks the view equals
// the truth, and that the changes it reported, applied by a client in
// order, give the same list with the right counts.
func simulate(seed uint64, cfg simConfig) error {
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	v := newView("self")
	nodes := make([]*simNode, cfg.nodes)
	for i := range nodes {
		nodes[i] = &simNode{name: "n" + strconv.Itoa(i), inc: 1, members: map[string]Member{}}
	}
	var queue []delta
	var resyncs []simResync
	var out []change
	now := int64(0)
	sessionN := 0

	byName := func(name string) *simNode {
		for _, n := range nodes {
			if n.name == name {
				return n
			}
		}
		return nil
	}
	ask := func(o outcome, node string, step int) {
		if o.resync {
			inc := v.nodes[node].gen.inc
			resyncs = append(resyncs, simResync{node, inc, step + rng.IntN(cfg.resyncDelayMax+1)})
		}
	}
	answer := func(r simResync, step int) {
		n := byName(r.node)
		if rng.Float64() < cfg.fail {
			v.resyncFailed(r.node)
			return
		}
		if n.inc != r.inc {
			v.dropIncarnation(r.node, r.inc, &out)
			return
		}
		s, ms := n.answer()
		ask(v.applySnapshot(s, ms, now, &out), r.node, step)
	}
	deliver := func(d delta, step int) {
		if rng.Float64() < cfg.drop {
			return
		}
		times := 1
		if rng.Float64() < cfg.dup {
			times = 2
		}
		for range times {
			dd := d
			ask(v.apply(&dd, now, &out), d.Node, step)
		}
	}

	for step := 0; step < cfg.steps; step++ {
		now++
		switch k := rng.IntN(10); {
		case k < 5: // a membership change on a random node
			n := nodes[rng.IntN(len(nodes))]
			switch c := rng.IntN(10); {
			case rng.Float64() < cfg.restart:
				n.inc++
				n.epochs, n.epoch, n.seq = 0, 0, 0
				n.members = map[string]Member{}
			case c < 5 || len(n.members) == 0:
				if len(n.members) == 0 {
					n.epochs++
					n.epoch, n.seq = n.epochs, 0
				}
				sessionN++
				m := Member{Session: "s" + strconv.Itoa(sessionN), User: "u", ConnectedAt: int64(sessionN)}
				n.members[m.Session] = m
				queue = append(queue, n.delta(opJoin, &m, ""))
			case c < 8:
				s := slices.Sorted(maps.Keys(n.members))[rng.IntN(len(n.members))]
				delete(n.members, s)
				queue = append(queue, n.delta(opLeave, nil, s))
			case c < 9:
				s := slices.Sorted(maps.Keys(n.members))[rng.IntN(len(n.members))]
				m := n.members[s]
				m.Meta = []byte(`{"v":` + strconv.Itoa(step) + `}`)
				n.members[s] = m
				queue = append(queue, n.delta(opUpdate, &m, ""))
			default: // graceful shutdown of the room on that node
				n.members = map[string]Member{}
				queue = append(queue, n.delta(opBye, nil, ""))
			}
		case k < 9 && len(queue) > 0: // deliver one of the oldest queued deltas
			i := rng.IntN(min(len(queue), cfg.reorderWindow))
			d := queue[i]
			queue = slices.Delete(queue, i, i+1)
			deliver(d, step)
		default: // answer the resyncs that are due
			var later []simResync
			for _, r := range resyncs {
				if r.due <= step {
					answer(r, step)
				} else {
					later = append(later, r)
				}
			}
			resyncs = later
		}
	}
	for _, d := range queue {
		deliver(d, cfg.steps)
	}
	// Repair: what the Tracker's timers do. Digests from nodes with members
	// until no resync is asked, answered reliably; then expiry of nodes not
	// heard from in the repair phase.
	cfg.fail = 0
	now += 1000
	cutoff := now
	for round := 0; ; round++ {
		if round > 10 {
			return fmt.Errorf("no convergence after 10 digest rounds")
		}
		for _, r := range resyncs {
			answer(r, 0)
		}
		resyncs = nil
		for _, n := range nodes {
			if len(n.members) > 0 {
				d := delta{Op: opDigest, Node: n.name, Inc: n.inc, Epoch: n.epoch, Seq: n.seq, Count: len(n.members)}
				ask(v.apply(&d, now, &out), n.name, 0)
			}
		}
		if len(resyncs) == 0 {
			break
		}
	}
	v.expire(cutoff, &out)

	want := map[string]Member{}
	for _, n := range nodes {
		maps.Copy(want, n.members)
	}
	got := map[string]Member{}
	for _, m := range v.members() {
		got[m.Session] = m
	}
	if err := sameMembers(got, want); err != nil {
		return fmt.Errorf("view: %w", err)
	}
	if v.count != len(want) {
		return fmt.Errorf("count %d, want %d", v.count, len(want))
	}
	// Replay the reported changes as a client would.
	client := map[string]Member{}
	for i, c := range out {
		switch c.kind {
		case joined:
			if _, ok := client[c.m.Session]; ok {
				return fmt.Errorf("change %d: joined %s twice", i, c.m.Session)
			}
			client[c.m.Session] = c.m
		case updated:
			if _, ok := client[c.m.Session]; !ok {
				return fmt.Errorf("change %d: updated unknown %s", i, c.m.Session)
			}
			client[c.m.Session] = c.m
		case left:
			if _, ok := client[c.m.Session]; !ok {
				return fmt.Errorf("change %d: left unknown %s", i, c.m.Session)
			}
			delete(client, c.m.Session)
		}
		if len(client) != c.count {
			return fmt.Errorf("change %d: count %d, client has %d", i, c.count, len(client))
		}
	}
	if err := sameMembers(client, want); err != nil {
		return fmt.Errorf("client replay: %w", err)
	}
	return nil
}

func sameMembers(got, want map[string]Member) error {
	for s, w := range want {
		g, ok := got[s]
		if !ok {
			return fmt.Errorf("missing %s", s)
		}
		if string(g.Meta) != string(w.Meta) || g.User != w.User || g.ConnectedAt != w.ConnectedAt {
			return fmt.Errorf("%s is %+v, want %+v", s, g, w)
		}
	}
	for s := range got {
		if _, ok := want[s]; !ok {
			return fmt.Errorf("ghost %s", s)
		}
	}
	return nil
}

var simConfigs = map[string]simConfig{
	"ordered":   {nodes: 3, steps: 400, reorderWindow: 1, resyncDelayMax: 0},
	"lossy":     {nodes: 3, steps: 400, drop: 0.1, reorderWindow: 1, resyncDelayMax: 5},
	"reordered": {nodes: 3, steps: 400, reorderWindow: 8, dup: 0.1, resyncDelayMax: 10},
	"chaos":     {nodes: 4, steps: 600, drop: 0.15, dup: 0.15, restart: 0.05, fail: 0.2, reorderWindow: 16, resyncDelayMax: 20},
}

// TestViewConverges is the property: whatever order, loss or duplication
// deltas suffer, digests and resyncs bring every view to the truth.
func TestViewConverges(t *testing.T) {
	for name, cfg := range simConfigs {
		t.Run(name, func(t *testing.T) {
			for seed := uint64(0); seed < 300; seed++ {
				if err := simulate(seed, cfg); err != nil {
					t.Fatalf("seed %d: %v", seed, err)
				}
			}
		})
	}
}

func FuzzViewConverges(f *testing.F) {
	f.Add(uint64(1), uint8(10), uint8(10), uint8(5), uint8(8))
	f.Add(uint64(7), uint8(0), uint8(0), uint8(0), uint8(1))
	f.Add(uint64(42), uint8(40), uint8(40), uint8(20), uint8(30))
	f.Fuzz(func(t *testing.T, seed uint64, drop, dup, restart, window uint8) {
		cfg := simConfig{
			nodes: 3, steps: 300,
			drop: float64(drop%60) / 100, dup: float64(dup%60) / 100,
			restart: float64(restart%30) / 100, fail: 0.1,
			reorderWindow: int(window%32) + 1, resyncDelayMax: 10,
		}
		if err := simulate(seed, cfg); err != nil {
			t.Fatal(err)
		}
	})
}
