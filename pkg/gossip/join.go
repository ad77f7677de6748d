package gossip

import (
	"context"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Rejoining. memberlist joins once, when told to; two halves of a healed
// partition, each having declared the other dead, never merge by
// themselves, and a node whose seeds were not up at its start stays alone.
// So the rejoin loop, every RejoinInterval, joins:
//
//   - the nodes that failed (not those that left) in the last rejoinFor,
//     each with its own backoff from RejoinInterval up to
//     maxBackoff × RejoinInterval;
//   - the seeds, names resolved again each time (a Kubernetes headless
//     Service lists the pods alive now): while this node is alone, with the
//     same backoff; otherwise every seedRecheck × RejoinInterval, which
//     also merges partitions that outlasted rejoinFor. Addresses of alive
//     members and our own are skipped, so a settled cluster costs one DNS
//     lookup per seed name per 30 s and no joins.
const (
	maxBackoff  = 5
	seedRecheck = 30
	rejoinFor   = 10 * time.Minute
	// lookupTimeout bounds the DNS lookups of one round.
	lookupTimeout = 2 * time.Second
)

// retry is an address the rejoin loop keeps trying. Guarded by Cluster.mu.
type retry struct {
	addr    string
	next    time.Time
	backoff time.Duration
	until   time.Time
}

func (c *Cluster) newRetry(addr string) *retry {
	now := time.Now()
	return &retry{addr: addr, next: now.Add(c.o.RejoinInterval), backoff: c.o.RejoinInterval, until: now.Add(rejoinFor)}
}

func (c *Cluster) rejoin() {
	defer c.wg.Done()
	tick := time.NewTicker(c.o.RejoinInterval)
	defer tick.Stop()
	seedsAt, backoff := time.Now(), c.o.RejoinInterval
	wasAlone := true
	keyWarned := false // once per spell of joins refused for the key
	for {
		now := time.Now()
		alone := c.ml.NumMembers() <= 1
		if alone && !wasAlone {
			seedsAt = now // everyone else just went away: look again at once
		}
		addrs := c.dueFailed(now)
		if len(c.o.Join) > 0 && !now.Before(seedsAt) {
			addrs = append(addrs, c.seeds()...)
			if alone {
				seedsAt, backoff = now.Add(backoff), min(2*backoff, maxBackoff*c.o.RejoinInterval)
			} else {
				seedsAt, backoff = now.Add(seedRecheck*c.o.RejoinInterval), c.o.RejoinInterval
			}
		}
		if len(addrs) > 0 {
			slices.Sort(addrs)
			addrs = slices.Compact(addrs)
			n, err := c.ml.Join(addrs)
			if err != nil {
				c.log.Debug("gossip: join", "addrs", addrs, "joined", n, "err", err)
			}
			switch {
			case err != nil && keyRefused(err) && !keyWarned:
				keyWarned = true
				c.log.Warn("gossip: a node answered, but one of us cannot open the other's gossip: give every node the same --gossip-key (or none)",
					"addrs", addrs, "err", err)
			case err == nil:
				keyWarned = false
			}
		}
		alone = c.ml.NumMembers() <= 1
		switch {
		case wasAlone && !alone:
			c.log.Info("gossip: joined the cluster", "members", c.ml.NumMembers())
		case !wasAlone && alone && len(c.o.Join) > 0:
			c.log.Warn("gossip: no other node is alive; retrying the seeds", "seeds", c.o.Join)
		case !wasAlone && alone:
			c.log.Warn("gossip: no other node is alive")
		}
		wasAlone = alone
		select {
		case <-c.done:
			return
		case <-tick.C:
		}
	}
}

// keyRefused reports whether a join failed because the two sides' keys
// differ, or only one side has any: memberlist says so only in its error
// text ("no installed keys could decrypt the message", "remote state is
// encrypted and encryption is not configured", "encryption is configured
// but remote state is not encrypted"). A mismatch would otherwise leave a
// node alone with nothing above debug in its log.
func keyRefused(err error) bool { return strings.Contains(err.Error(), "crypt") }

// dueFailed returns the failed nodes' addresses due for a try, and
// forgets those chased for rejoinFor.
func (c *Cluster) dueFailed(now time.Time) []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for node, r := range c.failed {
		if now.After(r.until) {
			delete(c.failed, node)
			continue
		}
		if now.Before(r.next) {
			continue
		}
		out = append(out, r.addr)
		r.backoff = min(2*r.backoff, maxBackoff*c.o.RejoinInterval)
		r.next = now.Add(r.backoff)
	}
	return out
}

// seeds resolves Options.Join into addresses that are neither ours nor an
// alive member's. A name keeps the addresses of our own family (IPv4 or
// IPv6): "localhost" may also give ::1, where nothing of ours listens.
func (c *Cluster) seeds() []string {
	known := map[string]bool{}
	for _, m := range c.Members() {
		known[m.Addr] = true
	}
	host, _, _ := net.SplitHostPort(c.self)
	v4 := net.ParseIP(host).To4() != nil
	ctx, cancel := context.WithTimeout(context.Background(), lookupTimeout)
	defer cancel()
	var out []string
	for _, s := range c.o.Join {
		host, port, err := net.SplitHostPort(s)
		if err != nil {
			host, port = s, strconv.Itoa(c.port)
		}
		var ips []net.IP
		if ip := net.ParseIP(host); ip != nil {
			ips = []net.IP{ip}
		} else {
			all, err := c.o.lookup(ctx, host)
			if err != nil {
				c.log.Debug("gossip: resolve seed", "seed", s, "err", err)
				continue
			}
			for _, ip := range all {
				if (ip.To4() != nil) == v4 {
					ips = append(ips, ip)
				}
			}
		}
		for _, ip := range ips {
			if a := net.JoinHostPort(ip.String(), port); !known[a] {
				known[a] = true
				out = append(out, a)
			}
		}
	}
	return out
}
