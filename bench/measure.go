package main

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/roomcast/roomcast/bench/internal/hist"
	"github.com/roomcast/roomcast/bench/internal/proto"
)

// phase is one measured load phase: what the load client saw and what the
// server processes spent meanwhile.
type phase struct {
	label string
	size  int
	pub   *proto.PublishResult
	cpu   float64 // server CPU seconds, all servers of the phase
	nats  float64 // NATS server CPU seconds (0 when NATS is embedded)
	load  float64 // load client CPU seconds
	secs  float64
	// syscalls: exact counts from perf when available, else /proc syscw
	// (write-class syscalls of any kind).
	writes, writevs int64
	perf            bool
	syscw           int64
	mallocs         float64
}

// measure runs one Publish against servers and samples them around it.
// natsPID is the external NATS server (0 if none).
func (r *run) measure(servers []*server, natsPID int, lc *loader, label string, p proto.Publish) (*phase, error) {
	pids := make([]int, len(servers))
	before := make([]sample, len(servers))
	for i, s := range servers {
		pids[i] = s.p.pid()
		before[i] = s.sample()
	}
	var natsBefore sample
	if natsPID > 0 {
		natsBefore = takeSample(natsPID, "")
	}
	loadBefore := takeSample(lc.p.pid(), "")
	pc := countSyscalls(pids...)
	res, err := lc.publish(p)
	w, wv, perr := pc.stop()
	ph := &phase{label: label, size: p.Size, pub: res, writes: w, writevs: wv, perf: perr == nil}
	for i, s := range servers {
		d := diff(before[i], s.sample())
		ph.cpu += d.cpu
		ph.syscw += d.syscw
		ph.mallocs += d.mallocs
		ph.secs = d.secs
	}
	if natsPID > 0 {
		ph.nats = diff(natsBefore, takeSample(natsPID, "")).cpu
	}
	ph.load = diff(loadBefore, takeSample(lc.p.pid(), "")).cpu
	if err != nil {
		return ph, err
	}
	logf("%s: %s deliveries in %s = %s (lost %d, server CPU %.2f s)", label, strconv.FormatUint(res.Delivered, 10),
		res.Elapsed.Round(time.Millisecond), fmtRate(ph.rate(), ""), ph.lost(), ph.cpu)
	return ph, nil
}

func (ph *phase) rate() float64 {
	if ph.pub == nil || ph.pub.Elapsed <= 0 {
		return 0
	}
	return float64(ph.pub.Delivered) / ph.pub.Elapsed.Seconds()
}

func (ph *phase) msgRate() float64 {
	if ph.pub == nil || ph.pub.Elapsed <= 0 {
		return 0
	}
	return float64(ph.pub.Published) / ph.pub.Elapsed.Seconds()
}

func (ph *phase) lost() int64 {
	if ph.pub == nil {
		return 0
	}
	return int64(ph.pub.Expected) - int64(ph.pub.Delivered)
}

func (ph *phase) perDelivery(v float64) float64 {
	if ph.pub == nil || ph.pub.Delivered == 0 {
		return 0
	}
	return v / float64(ph.pub.Delivered)
}

// writesPerDelivery is write-class syscalls per delivered message: the
// batching measure (1 = one write per message per connection).
func (ph *phase) writesPerDelivery() float64 {
	if ph.perf {
		return ph.perDelivery(float64(ph.writes + ph.writevs))
	}
	return ph.perDelivery(float64(ph.syscw))
}

func (ph *phase) latency(groups ...int) hist.Summary {
	if ph.pub == nil {
		return hist.Summary{}
	}
	if len(groups) == 0 {
		return summary(ph.pub.Latency[:]...)
	}
	var snaps []hist.Snapshot
	for _, g := range groups {
		snaps = append(snaps, ph.pub.Latency[g])
	}
	return summary(snaps...)
}

// phaseColumns and row render phases in one table layout.
var phaseColumns = []string{"server", "phase", "msg", "msgs/s", "deliveries/s", "server CPU", "load client CPU", "CPU/delivery",
	"deliveries per CPU-s", "writes/delivery", "allocs/delivery", "allocs/msg", "wire B/delivery", "p50", "p99", "lost"}

func (ph *phase) row(server string) []string {
	lat := ph.latency()
	cores, loadCores := 0.0, 0.0
	if ph.secs > 0 {
		cores, loadCores = ph.cpu/ph.secs, ph.load/ph.secs
	}
	lost := fmt.Sprint(ph.lost())
	if ph.pub != nil && ph.pub.Stats.Close4009 > 0 {
		lost += fmt.Sprintf(" (%d cut 4009)", ph.pub.Stats.Close4009)
	}
	allocs, allocsMsg := "–", "–"
	if ph.mallocs > 0 {
		allocs = fmt.Sprintf("%.3f", ph.perDelivery(ph.mallocs))
		allocsMsg = fmt.Sprintf("%.0f", ph.mallocs/float64(max(ph.pub.Published, 1)))
	}
	perCPU := "–"
	if ph.cpu > 0 {
		perCPU = fmtRate(float64(ph.pub.Delivered)/ph.cpu, "")
	}
	p50, p99 := "–", "–"
	if lat.N > 0 {
		p50, p99 = fmtDur(lat.P50), fmtDur(lat.P99)
	}
	return []string{server, ph.label, fmtBytes(float64(ph.size)), fmtRate(ph.msgRate(), ""), fmtRate(ph.rate(), ""),
		fmt.Sprintf("%.2f cores", cores), fmt.Sprintf("%.2f cores", loadCores), fmtF(ph.perDelivery(ph.cpu)*1e6, "µs"), perCPU,
		fmt.Sprintf("%.3f", ph.writesPerDelivery()), allocs, allocsMsg,
		fmtF(ph.perDelivery(float64(ph.pub.Stats.Bytes)), "B"), p50, p99, lost}
}

// record puts a phase's numbers into the result's metrics under key.
func (ph *phase) record(res *Result, key string) {
	lat := ph.latency()
	m := res.Metrics
	m[key+"_deliveries_per_s"] = ph.rate()
	m[key+"_msgs_per_s"] = ph.msgRate()
	m[key+"_server_cpu_us_per_delivery"] = ph.perDelivery(ph.cpu) * 1e6
	if ph.cpu > 0 {
		m[key+"_deliveries_per_cpu_s"] = float64(ph.pub.Delivered) / ph.cpu
	}
	m[key+"_writes_per_delivery"] = ph.writesPerDelivery()
	m[key+"_allocs_per_delivery"] = ph.perDelivery(ph.mallocs)
	m[key+"_wire_bytes_per_delivery"] = ph.perDelivery(float64(ph.pub.Stats.Bytes))
	m[key+"_lost"] = float64(ph.lost())
	if lat.N > 0 {
		m[key+"_p50_ms"] = float64(lat.P50) / 1e6
		m[key+"_p99_ms"] = float64(lat.P99) / 1e6
	}
}

// joinPIDs renders pids for perf's -p.
func joinPIDs(pids []int) string {
	s := make([]string, len(pids))
	for i, p := range pids {
		s[i] = strconv.Itoa(p)
	}
	return strings.Join(s, ",")
}
