package room

import (
	"log/slog"
	"sync"
	"time"
)

// logLimiter keeps a warning that input from outside can trigger (a
// back-end's rpc answers) to one line per period, with a count of what it
// held back, so a misbehaving service cannot flood the log.
type logLimiter struct {
	mu         sync.Mutex
	last       time.Time
	suppressed int
}

// logPeriod is the least time between two warnings of one limiter.
const logPeriod = 10 * time.Second

func (l *logLimiter) warn(log *slog.Logger, msg string, args ...any) {
	l.mu.Lock()
	now := time.Now()
	if now.Sub(l.last) < logPeriod {
		l.suppressed++
		l.mu.Unlock()
		return
	}
	l.last = now
	n := l.suppressed
	l.suppressed = 0
	l.mu.Unlock()
	if n > 0 {
		args = append(args, "suppressed", n)
	}
	log.Warn(msg, args...)
}
