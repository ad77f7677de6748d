// Command bench runs roomcast's benchmark scenarios (issue 8) against real
// processes and records the results.
//
//	go run ./bench -scenario NAME [-size full|short|smoke]
//
// Each scenario builds what it needs into a temporary directory
// (roomcast-node from ./cmd/node, the load client, the baseline server, a
// NATS server), starts real server processes on loopback, drives them from
// separate load client processes, samples the servers from /proc and their
// /metrics, prints one Markdown table set per scenario and writes
// bench/results/<scenario>.json. Every load phase is bounded in time and
// count and stops by itself; every child process is stopped at the end of its
// scenario and killed if the harness dies. See bench/README.md for what each
// scenario measures and what limits each number.
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// plan sizes a run. "full" is the reference run recorded in bench/README.md,
// "short" is make bench (all scenarios in under 5 minutes), "smoke" is
// make bench-smoke (idle only, ~30 s, gated).
type plan struct {
	size           string
	idleSteps      []int         // connection counts the idle scenario measures at
	fanoutMembers  int           // members of the one fanout room
	run            time.Duration // length of each measured load phase
	roomsConns     int           // rooms scenario: connections = rooms, 2 members each
	clusterPerNode int           // cluster scenario: members per node
	connectN       int           // connect scenario: connections per variant
	peers          bool          // run the side-by-side servers
}

var plans = map[string]plan{
	"full": {size: "full", idleSteps: []int{1000, 5000, 10000, 15000}, fanoutMembers: 10000,
		run: 6 * time.Second, roomsConns: 10000, clusterPerNode: 3000, connectN: 5000, peers: true},
	"short": {size: "short", idleSteps: []int{1000, 5000, 15000}, fanoutMembers: 5000,
		run: 2 * time.Second, roomsConns: 10000, clusterPerNode: 1500, connectN: 2000, peers: true},
	"smoke": {size: "smoke", idleSteps: []int{500, 2500, 5000}, fanoutMembers: 1000,
		run: 2 * time.Second, roomsConns: 1000, clusterPerNode: 300, connectN: 300},
}

// scenario is one named benchmark.
type scenario struct {
	name  string
	about string
	fn    func(r *run, res *Result) error
	// extra scenarios run only when named, not with "all".
	extra bool
}

var scenarios = []scenario{
	{"idle", "idle connections: memory per connection and goroutines at several N, side by side", idle, false},
	{"fanout", "one room × 10,000 members over NATS: deliveries/s, latency at 50 %, compression, side by side", fanout, false},
	{"rooms", "10,000 rooms × 2 members, random publishes over NATS: messages/s and latency", rooms, false},
	{"cluster", "3 nodes on one NATS, members spread: throughput and cross-node latency", cluster, false},
	{"keys", "one-time keys: mint+redeem pairs/s over HTTP and via keys.Store", keysScenario, false},
	{"connect", "connection setup: upgrades/s with key redemption and on a public route", connect, false},
	{"profile", "in-process fanout with CPU and allocation profiles: allocations per delivery", profile, false},
	{"joins", "a burst of joins into one big room vs joins in chunks: presence traffic", joins, true},
}

// run is the state shared by the scenarios of one invocation.
type run struct {
	root  string
	env   Env
	bins  bins
	plan  plan
	procs *procs
	tmp   string
	out   string
	peers map[string]bool
	// nodeFlags are passed to every roomcast-node: the seam for variants
	// such as history (issue 10), e.g. -node-flags "--config history.yaml".
	nodeFlags []string
}

func main() {
	which := flag.String("scenario", "all", "scenario(s), comma-separated: "+names()+", or all")
	size := flag.String("size", "full", "full (reference), short (make bench) or smoke (make bench-smoke)")
	out := flag.String("out", "", "results directory (default bench/results in the checkout)")
	peers := flag.String("peers", "baseline,centrifugo", "side-by-side servers: baseline, centrifugo, or none")
	centrifugo := flag.String("centrifugo", "", "Centrifugo binary (default: the cache filled by -build-peers)")
	buildPeers := flag.Bool("build-peers", false, "build Centrifugo "+centrifugoVersion+" from the module proxy if not cached (minutes)")
	nodeBin := flag.String("node-bin", "", "benchmark this roomcast-node binary instead of building ./cmd/node (to measure a patch)")
	nodeFlags := flag.String("node-flags", "", "extra roomcast-node flags for every node, space-separated (e.g. \"--config history.yaml\")")
	keep := flag.Bool("keep", false, "keep the temporary directory (binaries, logs, profiles)")
	flag.Parse()

	p, ok := plans[*size]
	if !ok {
		fatalf("-size %q: use full, short or smoke", *size)
	}
	var todo []scenario
	for _, name := range strings.Split(*which, ",") {
		name = strings.TrimSpace(name)
		found := false
		for _, s := range scenarios {
			if (name == "all" && !s.extra) || s.name == name {
				todo = append(todo, s)
				found = true
			}
		}
		if !found {
			fatalf("unknown scenario %q: use %s or all", name, names())
		}
	}

	root, err := moduleRoot()
	if err != nil {
		fatalf("%v", err)
	}
	raiseNofile()
	r := &run{root: root, plan: p, out: *out, peers: map[string]bool{}, nodeFlags: strings.Fields(*nodeFlags)}
	if r.out == "" {
		r.out = filepath.Join(root, "bench", "results")
	}
	if r.out == filepath.Join(root, "bench", "results") && p.size == "smoke" {
		// Smoke runs are checks (make test), not records: keep the tree
		// clean and leave bench/results to real runs.
		r.out = filepath.Join(os.TempDir(), "roomcast-bench-smoke")
	}
	if p.peers {
		for _, s := range strings.Split(*peers, ",") {
			if s = strings.TrimSpace(s); s != "" && s != "none" {
				r.peers[s] = true
			}
		}
	}
	r.env = readEnv(root)
	r.tmp, err = os.MkdirTemp("", "roomcast-bench-")
	if err != nil {
		fatalf("%v", err)
	}
	if *keep {
		logf("keeping %s", r.tmp)
	} else {
		defer os.RemoveAll(r.tmp)
	}
	r.bins, err = build(root, r.tmp, *nodeBin, r.peers["baseline"])
	if err != nil {
		os.RemoveAll(r.tmp)
		fatalf("%v", err)
	}
	if r.peers["centrifugo"] {
		r.bins.centrifugo, r.bins.centrifugoWhy = findCentrifugo(*centrifugo, *buildPeers)
		if r.bins.centrifugo == "" {
			logf("Centrifugo skipped: %s", r.bins.centrifugoWhy)
		}
	}
	logf("commit %s, %s, %d cores (%s), load average %s, size %s",
		r.env.Commit, r.env.GoVersion, r.env.Cores, r.env.CPU, r.env.LoadAvg, p.size)

	failed := false
	for _, s := range todo {
		if err := r.scenario(s); err != nil {
			logf("%s: %v", s.name, err)
			failed = true
		}
	}
	if failed {
		if !*keep {
			os.RemoveAll(r.tmp) // os.Exit skips the deferred removal
		}
		os.Exit(1)
	}
}

// scenario runs one scenario with its own processes, then prints and saves
// the result; a missed gate is an error.
func (r *run) scenario(s scenario) error {
	logf("scenario %s: %s", s.name, s.about)
	dir := filepath.Join(r.tmp, s.name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	r.procs = &procs{dir: dir}
	defer r.procs.stopAll()
	res := newResult(s.name, r.env, r.plan.size)
	res.Env.LoadAvg = readEnv(r.root).LoadAvg
	start := time.Now()
	err := s.fn(r, res)
	res.Elapsed = time.Since(start).Round(time.Second).String()
	if err != nil {
		res.note("scenario failed: %v", err)
	}
	res.print(os.Stdout)
	if p, serr := res.save(r.out); serr != nil {
		logf("cannot save %s: %v", s.name, serr)
	} else {
		logf("wrote %s", p)
	}
	if err != nil {
		return err
	}
	if f := res.failedGates(); len(f) > 0 {
		return fmt.Errorf("missed: %s", strings.Join(f, "; "))
	}
	return nil
}

func names() string {
	var n []string
	for _, s := range scenarios {
		if s.extra {
			n = append(n, s.name+" (not in all)")
		} else {
			n = append(n, s.name)
		}
	}
	return strings.Join(n, ", ")
}

func fatalf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "bench: "+format+"\n", args...)
	os.Exit(2)
}
