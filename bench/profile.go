package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"time"

	"github.com/roomcast/roomcast/bench/internal/proto"
	"github.com/roomcast/roomcast/pkg/node"
)

// profile runs the fanout load against a node inside the harness process
// (pkg/node, exactly what cmd/node wires), so that runtime/pprof can take
// CPU, allocation, mutex and block profiles of the hot path without a debug
// endpoint in the product. The load client is still a separate process.
// Profiles go to bench/results/profile/ (ignored by git); the tables show
// their tops.
func profile(r *run, res *Result) error {
	members := r.plan.fanoutMembers
	natsPort := freePort()
	opts := node.Defaults()
	opts.Listen = "127.0.0.1:0"
	opts.NATSListen = "127.0.0.1:" + strconv.Itoa(natsPort)
	opts.NodeID = "profile"
	opts.Demo = true
	opts.DataDir = filepath.Join(r.procs.dir, "js")
	opts.Logger = slog.New(slog.DiscardHandler)
	n, err := node.New(opts)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- n.Run(ctx) }()
	defer func() {
		cancel()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
		}
	}()
	deadline := time.Now().Add(30 * time.Second)
	for n.Addr() == nil {
		if time.Now().After(deadline) {
			return fmt.Errorf("in-process node not listening after 30s")
		}
		select {
		case err := <-done:
			return fmt.Errorf("in-process node stopped: %v", err)
		case <-time.After(20 * time.Millisecond):
		}
	}
	addr := n.Addr().String()
	natsURL := "nats://127.0.0.1:" + strconv.Itoa(natsPort)
	res.Params["members"] = members
	res.Params["window_msgs"] = fanoutWindow
	res.Params["phase"] = r.plan.run.String()

	lc, err := r.startLoader("load", loaderOptions{server: addr})
	if err != nil {
		return err
	}
	defer lc.quit()
	if err := lc.dialJoined(proto.Dial{Concurrency: 32, Path: "/_/demo/ws", Room: fanoutRoom}, members, joinChunk, 1); err != nil {
		return err
	}
	p := proto.Publish{Via: "nats", NATS: natsURL, Prefix: "rc.room.", Targets: []string{fanoutRoom},
		PerMsg: members, Size: 128, Window: fanoutWindow, Duration: time.Second}
	if _, err := lc.publish(p); err != nil {
		return err
	}

	dir := filepath.Join(r.out, "profile")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	path := func(name string) string { return filepath.Join(dir, name) }
	if err := writeProfile("allocs", path("allocs-before.pprof")); err != nil {
		return err
	}
	// Mutex and block profiles sample contention: a fraction of events, so
	// the overhead on the measured phase stays small.
	runtime.SetMutexProfileFraction(20)
	runtime.SetBlockProfileRate(int((20 * time.Microsecond).Nanoseconds()))
	cpuFile, err := os.Create(path("cpu.pprof"))
	if err != nil {
		return err
	}
	var m0, m1 runtime.MemStats
	runtime.ReadMemStats(&m0)
	pc := countSyscalls(os.Getpid())
	if err := pprof.StartCPUProfile(cpuFile); err != nil {
		return err
	}
	p.Duration = r.plan.run
	pub, perr := lc.publish(p)
	pprof.StopCPUProfile()
	cpuFile.Close()
	w, wv, serr := pc.stop()
	runtime.ReadMemStats(&m1)
	runtime.SetMutexProfileFraction(0)
	runtime.SetBlockProfileRate(0)
	if perr != nil {
		return perr
	}
	for _, name := range []string{"allocs", "mutex", "block"} {
		if err := writeProfile(name, path(name+".pprof")); err != nil {
			return err
		}
	}

	d := float64(pub.Delivered)
	mallocs := float64(m1.Mallocs - m0.Mallocs)
	res.Metrics["deliveries"] = d
	res.Metrics["messages"] = float64(pub.Published)
	res.Metrics["deliveries_per_s"] = d / pub.Elapsed.Seconds()
	res.Metrics["allocs_per_delivery"] = mallocs / d
	res.Metrics["allocs_per_message"] = mallocs / float64(pub.Published)
	res.Metrics["alloc_bytes_per_delivery"] = float64(m1.TotalAlloc-m0.TotalAlloc) / d
	t := res.table("In-process node, one room × "+fmt.Sprint(members)+", 128 B, closed loop",
		"deliveries", "deliveries/s", "allocs/delivery", "allocs/message", "bytes allocated/delivery", "write syscalls/delivery", "frames per write", "GC cycles")
	wpd, fpw := "–", "–"
	if serr == nil {
		res.Metrics["writes_per_delivery"] = float64(w+wv) / d
		wpd = fmt.Sprintf("%.3f (%d write + %d writev)", float64(w+wv)/d, w, wv)
		fpw = fmt.Sprintf("%.1f", d/float64(w+wv))
	}
	t.add(fmt.Sprint(pub.Delivered), fmtRate(d/pub.Elapsed.Seconds(), ""), fmt.Sprintf("%.4f", mallocs/d),
		fmt.Sprintf("%.1f", mallocs/float64(pub.Published)), fmtF(float64(m1.TotalAlloc-m0.TotalAlloc)/d, "B"),
		wpd, fpw, fmt.Sprint(m1.NumGC-m0.NumGC))

	tops := []struct{ title, args string }{
		{"CPU profile, top functions by cumulative time", "-top -cum -nodecount=25 " + path("cpu.pprof")},
		// Sampled (one per 512 KiB allocated): a guide to where, while the
		// MemStats count above is exact. The harness's own profiling is left out.
		{"Allocations during the measured phase (sampled objects), top functions", "-top -sample_index=alloc_objects -nodecount=12 -ignore=runtime/pprof|compress/|main[.] -base " +
			path("allocs-before.pprof") + " " + path("allocs.pprof")},
		// The mutex profile charges contention to the unlocker: who held
		// the lock others waited for.
		{"Mutex contention (delay), charged to the holder", "-top -cum -nodecount=10 " + path("mutex.pprof")},
		// The block profile shows the waiters; idle waits (select, cond)
		// are filtered out so lock waits stand out.
		{"Blocked on a sync.Mutex (delay), charged to the waiter", "-top -cum -nodecount=10 -focus=sync[.][(][*]Mutex[)][.]Lock " + path("block.pprof")},
	}
	for _, tp := range tops {
		rows, err := pprofTop(strings.Fields(tp.args))
		if err != nil {
			res.note("%s: %v", tp.title, err)
			continue
		}
		pt := res.table(tp.title, "flat", "flat%", "cum", "cum%", "function")
		for _, row := range rows {
			pt.add(row...)
		}
	}
	res.note("Profiles: bench/results/profile/{cpu,allocs,mutex,block}.pprof (not committed); e.g. `go tool pprof -http=: bench/results/profile/cpu.pprof`.")
	res.note("The harness process hosts the node, so its own few allocations (one command round trip) are inside the counts; they are negligible next to the deliveries.")
	return nil
}

// writeProfile writes a runtime profile. The allocs profile only reflects
// the last completed GC cycle, so one is forced first: a before/after pair
// then brackets exactly the allocations in between.
func writeProfile(name, path string) error {
	if name == "allocs" {
		runtime.GC()
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	return pprof.Lookup(name).WriteTo(f, 0)
}

// pprofTop runs `go tool pprof` and returns the rows of its -top table.
func pprofTop(args []string) ([][]string, error) {
	out, err := exec.Command("go", append([]string{"tool", "pprof"}, args...)...).Output()
	if err != nil {
		return nil, fmt.Errorf("go tool pprof: %v", err)
	}
	var rows [][]string
	in := false
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) >= 5 && f[0] == "flat" && f[1] == "flat%" {
			in = true
			continue
		}
		if !in || len(f) < 6 {
			continue
		}
		rows = append(rows, []string{f[0], f[1], f[3], f[4], strings.Join(f[5:], " ")})
	}
	return rows, nil
}
