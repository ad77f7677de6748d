package bus

import (
	"context"
	"errors"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// The schedule of RetryNoResponders: 25 ms doubling, 6 tries, about
// 0.8 s of pauses in all.
const (
	retryPause = 25 * time.Millisecond
	retryTries = 6
)

// NoResponders reports whether err says a request reached nobody: nats.go's
// ErrNoResponders, or JetStream's ErrNoStreamResponse for a publish.
func NoResponders(err error) bool {
	return errors.Is(err, nats.ErrNoResponders) || errors.Is(err, jetstream.ErrNoStreamResponse)
}

// RetryNoResponders runs op again, with a short doubling pause, while
// noResponders(err) holds for its error. In a JetStream cluster "no
// responders" is transient and harmless to retry: the request reached
// nobody, so nothing was read or written. A node sees it for a moment
// after a replicated stream or bucket is created or moves (its replicas'
// interest has not reached the node's NATS server yet) and during a leader
// election. Any other error, and ctx ending, return at once.
func RetryNoResponders(ctx context.Context, noResponders func(error) bool, op func() error) error {
	pause := retryPause
	for try := 1; ; try++ {
		err := op()
		if err == nil || try == retryTries || !noResponders(err) {
			return err
		}
		t := time.NewTimer(pause)
		select {
		case <-ctx.Done():
			t.Stop()
			return err
		case <-t.C:
		}
		pause *= 2
	}
}
