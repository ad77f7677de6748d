package node

import (
	"net"
	"net/http"
	"net/netip"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// connLimits counts open connections per node and per client IP. The check
// at upgrade time and the count at open time are separate steps, so a burst
// of simultaneous handshakes may overshoot a limit by the number of
// handshakes in flight; the next ones are refused.
type connLimits struct {
	maxTotal int // 0 = no limit
	maxPerIP int // 0 = no limit

	mu    sync.Mutex
	total int
	perIP map[netip.Addr]int
}

func (l *connLimits) allow(ip netip.Addr) (ok bool, which string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.maxTotal > 0 && l.total >= l.maxTotal {
		return false, "node"
	}
	if l.maxPerIP > 0 && l.perIP[ip] >= l.maxPerIP {
		return false, "ip"
	}
	return true, ""
}

func (l *connLimits) opened(ip netip.Addr) {
	l.mu.Lock()
	l.total++
	if l.maxPerIP > 0 {
		if l.perIP == nil {
			l.perIP = map[netip.Addr]int{}
		}
		l.perIP[ip]++
	}
	l.mu.Unlock()
}

func (l *connLimits) closed(ip netip.Addr) {
	l.mu.Lock()
	l.total--
	if l.maxPerIP > 0 {
		if l.perIP[ip] <= 1 {
			delete(l.perIP, ip)
		} else {
			l.perIP[ip]--
		}
	}
	l.mu.Unlock()
}

// ipLimiter is a token bucket per client IP for the HTTP API, so a wrong
// API key cannot be guessed at line rate and one caller cannot starve the
// rest. Buckets idle for a minute are forgotten.
type ipLimiter struct {
	rate  rate.Limit
	burst int

	mu      sync.Mutex
	buckets map[netip.Addr]*ipBucket
	swept   time.Time
}

type ipBucket struct {
	lim  *rate.Limiter
	seen time.Time
}

func newIPLimiter(perSecond float64, burst int) *ipLimiter {
	return &ipLimiter{rate: rate.Limit(perSecond), burst: burst, buckets: map[netip.Addr]*ipBucket{}}
}

func (l *ipLimiter) allow(ip netip.Addr) bool {
	if l.rate <= 0 {
		return true
	}
	now := time.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.Sub(l.swept) > time.Minute {
		for k, b := range l.buckets {
			if now.Sub(b.seen) > time.Minute {
				delete(l.buckets, k)
			}
		}
		l.swept = now
	}
	b := l.buckets[ip]
	if b == nil {
		b = &ipBucket{lim: rate.NewLimiter(l.rate, l.burst)}
		l.buckets[ip] = b
	}
	b.seen = now
	return b.lim.AllowN(now, 1)
}

// limit wraps an API handler with the per-IP limiter; p names the client
// behind a trusted proxy.
func (l *ipLimiter) limit(p proxies, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !l.allow(p.client(remoteIP(r.RemoteAddr), r.Header.Get)) {
			w.Header().Set("Retry-After", "1")
			writeError(w, 429, "rate_limited", "too many requests from this address: slow down")
			return
		}
		h.ServeHTTP(w, r)
	})
}

func remoteIP(addr string) netip.Addr {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		host = addr
	}
	ip, _ := netip.ParseAddr(host)
	return ip.Unmap()
}
