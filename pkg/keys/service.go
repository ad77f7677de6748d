package keys

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/roomcast/roomcast/pkg/bus"
)

// QueueGroup is the queue group of the rc.keys.mint responders: each request
// is answered by one node, whichever NATS picks.
const QueueGroup = "roomcast-keys"

// mintTimeout bounds one mint behind a request (one JetStream round trip
// normally; more only when NATS is in trouble).
const mintTimeout = 5 * time.Second

// ErrorBody is the JSON error answer of POST /_/keys and rc.keys.mint:
//
//	{"error":{"code":"bad_request","message":"rooms[0]: room \"a b\" is invalid: ..."}}
type ErrorBody struct {
	Error ErrorDetail `json:"error"`
}

// ErrorDetail says what went wrong: Code is one of bad_request, unavailable,
// unauthorized, forbidden, too_large, method_not_allowed, internal; Message
// says what to do about it.
type ErrorDetail struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// Serve answers mint requests on subj.KeysMint() (rc.keys.mint) in queue
// group QueueGroup until stop is called or ctx ends. A request carries the
// ParseMintRequest body; the reply is the Minted JSON or an ErrorBody with
// code bad_request or unavailable. Requests are handled one at a time per
// node, in order; the queue group spreads them over nodes. Requests reach
// this node once Serve returns (if NATS is up). Once stop returns
// no new request reaches this node; stop is safe to call more than once.
func Serve(ctx context.Context, nc *nats.Conn, subj bus.Subjects, s *Store, logger *slog.Logger) (stop func(), err error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	subject := subj.KeysMint()
	sub, err := nc.QueueSubscribe(subject, QueueGroup, func(m *nats.Msg) {
		serveMint(ctx, s, logger, m)
	})
	if err != nil {
		return nil, fmt.Errorf("keys: serve %s: %w", subject, err)
	}
	// Have the server register the subscription before Serve returns, so
	// the service answers from then on. While NATS is down this fails at
	// once and nats.go subscribes on reconnect.
	_ = nc.FlushTimeout(time.Second)
	var once sync.Once
	stop = func() {
		once.Do(func() {
			if err := sub.Unsubscribe(); err != nil && !errors.Is(err, nats.ErrConnectionClosed) {
				logger.Debug("keys: stop serving", "subject", subject, "err", err)
				return
			}
			// Let the server see the unsubscribe before stop returns, so
			// that no request is routed here afterwards.
			_ = nc.FlushTimeout(time.Second)
		})
	}
	context.AfterFunc(ctx, stop)
	return stop, nil
}

func serveMint(ctx context.Context, s *Store, logger *slog.Logger, m *nats.Msg) {
	if m.Reply == "" {
		logger.Debug("keys: mint request without reply subject ignored", "subject", m.Subject)
		return
	}
	var reply []byte
	c, ttl, err := ParseMintRequest(m.Data, s.defaultTTL, s.maxTTL)
	if err != nil {
		s.count("mint", "invalid")
	} else {
		mctx, cancel := context.WithTimeout(ctx, mintTimeout)
		var minted Minted
		minted, err = s.Mint(mctx, c, ttl)
		cancel()
		if err == nil {
			reply, err = json.Marshal(minted)
		}
	}
	if err != nil {
		_, code, msg := classify(err)
		logger.Debug("keys: mint request refused", "code", code, "err", err)
		reply, _ = json.Marshal(ErrorBody{ErrorDetail{Code: code, Message: msg}})
	}
	if err := m.Respond(reply); err != nil {
		logger.Debug("keys: mint reply not sent", "err", err)
	}
}

// classify maps a Mint or ParseMintRequest error to an HTTP status, an
// error code and a message for the caller. Internal details of NATS
// failures stay in the node's log.
func classify(err error) (status int, code, msg string) {
	switch {
	case errors.Is(err, ErrBadRequest):
		return http.StatusBadRequest, "bad_request", err.Error()
	case errors.Is(err, ErrUnavailable):
		return http.StatusServiceUnavailable, "unavailable", "the key store (NATS JetStream) is unavailable: try again shortly"
	default:
		return http.StatusInternalServerError, "internal", "minting failed: see the node's log"
	}
}
