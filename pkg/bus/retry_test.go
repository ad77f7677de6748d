package bus

import (
	"context"
	"errors"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// TestRetryNoResponders: "no responders" (what a node sees while a replicated
// bucket's interest is still spreading through a NATS cluster, as CI once
// caught) is retried; anything else, or an ended context, is returned as is.
func TestRetryNoResponders(t *testing.T) {
	ctx := context.Background()
	calls := 0
	err := RetryNoResponders(ctx, NoResponders, func() error {
		if calls++; calls < 3 {
			return nats.ErrNoResponders
		}
		return nil
	})
	if err != nil || calls != 3 {
		t.Errorf("no responders twice, then ok: err %v after %d calls; want nil after 3", err, calls)
	}

	calls = 0
	err = RetryNoResponders(ctx, NoResponders, func() error { calls++; return jetstream.ErrNoStreamResponse })
	if !errors.Is(err, jetstream.ErrNoStreamResponse) || calls != retryTries {
		t.Errorf("never answered: err %v after %d calls; want ErrNoStreamResponse after %d", err, calls, retryTries)
	}

	calls = 0
	err = RetryNoResponders(ctx, NoResponders, func() error { calls++; return jetstream.ErrKeyNotFound })
	if !errors.Is(err, jetstream.ErrKeyNotFound) || calls != 1 {
		t.Errorf("other error: err %v after %d calls; want it after 1", err, calls)
	}

	cctx, cancel := context.WithCancel(ctx)
	cancel()
	calls = 0
	err = RetryNoResponders(cctx, NoResponders, func() error { calls++; return nats.ErrNoResponders })
	if !errors.Is(err, nats.ErrNoResponders) || calls != 1 {
		t.Errorf("ended context: err %v after %d calls; want no responders after 1", err, calls)
	}
}
