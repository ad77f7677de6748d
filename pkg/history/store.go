package history

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/roomcast/roomcast/pkg/bus"
	"github.com/roomcast/roomcast/pkg/names"
)

const (
	// DefaultCheckInterval is how often a node checks its streams: a
	// stream deleted by hand is recreated (with a new epoch) and a reset
	// is noticed within this time even in a silent room.
	DefaultCheckInterval = 5 * time.Second
	// startTimeout bounds Start's first attempt to create the streams when
	// ctx has no deadline; after it the node runs and keeps trying.
	startTimeout = 10 * time.Second
	// refreshSpacing rate-limits the stream lookups a sequence anomaly
	// triggers (see Feed.Live): one per stream per second at most.
	refreshSpacing = time.Second
	// duplicatesWindow is the stream's Nats-Msg-Id window. Roomcast sets no
	// message ids; a short window keeps the server's dedupe map small for
	// publishers that do.
	duplicatesWindow = 10 * time.Second
)

// Options configure New. NC and JS are required.
type Options struct {
	// NC is the node's NATS connection; JS the JetStream API on it.
	NC *nats.Conn
	JS jetstream.JetStream
	// Subjects names the NATS subjects; the zero value uses prefix "rc".
	Subjects bus.Subjects
	// Config lists the rooms that keep history. It must pass Validate.
	Config []Config
	// Logger; nil discards.
	Logger *slog.Logger
	// Metrics; nil means an unregistered set.
	Metrics *Metrics
	// CheckInterval; 0 means DefaultCheckInterval.
	CheckInterval time.Duration
}

// Store is a node's view of the history streams: which rooms keep history,
// the streams themselves (created and kept alive), and reads from them.
// Safe for concurrent use.
type Store struct {
	o       Options
	log     *slog.Logger
	nc      *nats.Conn
	js      jetstream.JetStream
	m       *Metrics
	streams []*Stream

	// prefixes of the subjects the Store builds: "rc.stored.", "rc.history.".
	storedPrefix, historyPrefix string

	stop chan struct{}
	wg   sync.WaitGroup
	once sync.Once
}

// Stream is the history of the rooms of one Config entry: one JetStream
// stream capturing rc.room.<pattern>, republishing to rc.stored.<pattern>.
type Stream struct {
	s       *Store
	cfg     Config // with defaults
	name    string
	subject string // rc.room.<pattern>
	api     string // $JS.API.DIRECT.GET.<name>

	epoch       atomic.Pointer[string]
	lastRefresh atomic.Int64 // unix ns of the last anomaly-driven lookup
	missing     atomic.Bool  // last check found no stream (logged once)
}

// New checks o and returns a Store; Start creates the streams.
func New(o Options) (*Store, error) {
	if o.NC == nil || o.JS == nil {
		return nil, errors.New("history: Options.NC and Options.JS are required")
	}
	if err := Validate(o.Config); err != nil {
		return nil, err
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Metrics == nil {
		o.Metrics = NewMetrics(nil)
	}
	if o.CheckInterval <= 0 {
		o.CheckInterval = DefaultCheckInterval
	}
	prefix := o.Subjects.Prefix
	if prefix == "" {
		prefix = bus.DefaultPrefix
	}
	s := &Store{o: o, log: o.Logger, nc: o.NC, js: o.JS, m: o.Metrics, stop: make(chan struct{}),
		storedPrefix: prefix + ".stored.", historyPrefix: prefix + ".history."}
	api := apiPrefix(o.JS)
	for _, c := range o.Config {
		c = c.withDefaults()
		subject := o.Subjects.Room(c.Rooms)
		name := streamName(subject)
		st := &Stream{s: s, cfg: c, name: name, subject: subject, api: api + "DIRECT.GET." + name}
		empty := ""
		st.epoch.Store(&empty)
		s.streams = append(s.streams, st)
	}
	return s, nil
}

// apiPrefix is the JetStream API prefix js talks to, with its final dot.
func apiPrefix(js jetstream.JetStream) string {
	o := js.Options()
	switch {
	case o.Domain != "":
		return "$JS." + o.Domain + ".API."
	case o.APIPrefix != "":
		if o.APIPrefix[len(o.APIPrefix)-1] != '.' {
			return o.APIPrefix + "."
		}
		return o.APIPrefix
	}
	return jetstream.DefaultAPIPrefix
}

// Start creates or updates every stream, then keeps checking them until
// Close. A configuration the server refuses (no JetStream, subjects taken by
// another stream) is an error; NATS not answering yet is not: the check loop
// keeps trying, and history rooms deliver nothing until their stream exists.
func (s *Store) Start(ctx context.Context) error {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, startTimeout)
		defer cancel()
	}
	for _, st := range s.streams {
		err := st.ensure(ctx, true)
		switch {
		case errors.Is(err, errConfig):
			return err
		case err != nil:
			s.log.Warn("history stream not reachable yet; retrying", "stream", st.name, "rooms", st.cfg.Rooms, "err", err)
		}
	}
	s.wg.Add(1)
	go s.checkLoop()
	return nil
}

// Close stops the check loop. The streams stay: they are the cluster's, not
// this node's.
func (s *Store) Close() {
	s.once.Do(func() { close(s.stop) })
	s.wg.Wait()
}

func (s *Store) checkLoop() {
	defer s.wg.Done()
	t := time.NewTicker(s.o.CheckInterval)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
		}
		for _, st := range s.streams {
			ctx, cancel := context.WithTimeout(context.Background(), s.o.CheckInterval)
			err := st.ensure(ctx, false)
			cancel()
			if err != nil {
				s.log.Debug("history stream check", "stream", st.name, "err", err)
			}
		}
	}
}

// For returns the stream keeping room's history, or nil if room keeps none
// (always nil for a nil Store). room must be a valid room name.
func (s *Store) For(room string) *Stream {
	if s == nil {
		return nil
	}
	for _, st := range s.streams {
		if names.Match(st.cfg.Rooms, room) {
			return st
		}
	}
	return nil
}

// Streams returns every stream, in configuration order.
func (s *Store) Streams() []*Stream { return s.streams }

// LiveSubject is rc.stored.<room>: where the stream republishes room's
// messages once stored, with their sequence. Nodes subscribe to it instead
// of rc.room.<room> for rooms with history.
func (s *Store) LiveSubject(room string) string { return s.storedPrefix + room }

// RoomFromLive returns the room of an rc.stored.<room> subject.
func (s *Store) RoomFromLive(subject string) (string, bool) {
	if s == nil || len(subject) <= len(s.storedPrefix) || subject[:len(s.storedPrefix)] != s.storedPrefix {
		return "", false
	}
	return subject[len(s.storedPrefix):], true
}

// HistorySubject is rc.history.<room>, the back-ends' history request;
// HistoryAll is its wildcard, rc.history.>.
func (s *Store) HistorySubject(room string) string { return s.historyPrefix + room }

// HistoryAll is rc.history.>, which every node serves in one queue group.
func (s *Store) HistoryAll() string { return s.historyPrefix + ">" }

// RoomFromHistory returns the room of an rc.history.<room> subject.
func (s *Store) RoomFromHistory(subject string) (string, bool) {
	if len(subject) <= len(s.historyPrefix) || subject[:len(s.historyPrefix)] != s.historyPrefix {
		return "", false
	}
	return subject[len(s.historyPrefix):], true
}

// Name is the JetStream stream name, e.g. rc-history-0a1b2c3d4e5f.
func (st *Stream) Name() string { return st.name }

// Config is the entry this stream keeps, with defaults filled in.
func (st *Stream) Config() Config { return st.cfg }

// Epoch identifies this incarnation of the stream: the stream's creation
// time in nanoseconds, base 36. A stream deleted and created again has a
// new epoch, so positions from the old one are refused. Empty until the
// stream has been seen once.
func (st *Stream) Epoch() string { return *st.epoch.Load() }

func (st *Stream) setEpoch(created time.Time) {
	e := strconv.FormatInt(created.UnixNano(), 36)
	if old := st.Epoch(); old != e {
		st.epoch.Store(&e)
		if old != "" {
			st.s.m.Resets.Inc()
			st.s.log.Warn("history stream was reset: positions from before are refused (clients refetch)",
				"stream", st.name, "rooms", st.cfg.Rooms, "old_epoch", old, "epoch", e)
		}
	}
}

// config is the stream configuration of st.
func (st *Stream) config() jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:              st.name,
		Description:       "roomcast history of rooms " + st.cfg.Rooms,
		Subjects:          []string{st.subject},
		Retention:         jetstream.LimitsPolicy,
		Discard:           jetstream.DiscardOld,
		MaxMsgsPerSubject: int64(st.cfg.Size),
		MaxAge:            st.cfg.TTL,
		Storage:           jetstream.FileStorage,
		Replicas:          st.cfg.Replicas,
		Duplicates:        min(duplicatesWindow, st.cfg.TTL),
		// Direct gets let any replica answer reads in batches without
		// the stream leader's API round trip (replay, refill, history).
		AllowDirect: true,
		RePublish: &jetstream.RePublish{
			Source:      st.subject,
			Destination: liveDestination(st.s.storedPrefix, st.cfg.Rooms),
		},
	}
}

// ensure makes the stream exist. With update, a stream whose limits differ
// from the configuration is updated (only Start does that, so during a
// rolling change old nodes do not fight new ones). It refreshes the epoch.
func (st *Stream) ensure(ctx context.Context, update bool) error {
	js := st.s.js
	want := st.config()
	s, err := js.Stream(ctx, st.name)
	switch {
	case errors.Is(err, jetstream.ErrStreamNotFound):
		if !update && !st.missing.Swap(true) {
			st.s.log.Warn("history stream is missing; creating it: earlier history of these rooms is gone", "stream", st.name, "rooms", st.cfg.Rooms)
		}
		s, err = js.CreateStream(ctx, want)
		if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
			s, err = js.Stream(ctx, st.name) // another node was first
		}
		if err != nil {
			return st.explain(err)
		}
	case err != nil:
		return st.explain(err)
	case update && differs(s.CachedInfo().Config, want):
		s, err = js.UpdateStream(ctx, want)
		if err != nil {
			return st.explain(err)
		}
		st.s.log.Info("history stream updated", "stream", st.name, "rooms", st.cfg.Rooms, "size", st.cfg.Size, "ttl", st.cfg.TTL)
	}
	st.missing.Store(false)
	st.setEpoch(s.CachedInfo().Created)
	return nil
}

// differs reports whether the stream's limits or subjects are not what
// roomcast configures.
func differs(have, want jetstream.StreamConfig) bool {
	return have.MaxMsgsPerSubject != want.MaxMsgsPerSubject || have.MaxAge != want.MaxAge ||
		have.Replicas != want.Replicas || !have.AllowDirect ||
		len(have.Subjects) != 1 || have.Subjects[0] != want.Subjects[0] ||
		have.RePublish == nil || *have.RePublish != *want.RePublish
}

// explain turns server refusals into errors for people; errors that a
// retry may fix are returned as they are.
func (st *Stream) explain(err error) error {
	var api *jetstream.APIError
	switch {
	case errors.Is(err, jetstream.ErrJetStreamNotEnabled), errors.Is(err, jetstream.ErrJetStreamNotEnabledForAccount):
		return fmt.Errorf("%w: NATS has no JetStream, which keeps room history: start nats-server with -js (or remove the history setting)", errConfig)
	case errors.As(err, &api) && api.ErrorCode == 10065: // subjects overlap
		return fmt.Errorf("%w: history of rooms %q: subject %s is already captured by another JetStream stream: "+
			"remove that stream or change the pattern (%s)", errConfig, st.cfg.Rooms, st.subject, api.Description)
	case errors.As(err, &api) && api.Code == 400:
		return fmt.Errorf("%w: history of rooms %q: NATS refused stream %s: %s", errConfig, st.cfg.Rooms, st.name, api.Description)
	}
	return fmt.Errorf("history: stream %s: %w", st.name, err)
}

// Refresh looks the stream up now, as the periodic check does (creating it
// if it is missing), so that Epoch is current. Call it before catching up
// feeds (Feed.CatchUp) when the stream may have been reset unseen, such as
// after the node's NATS connection came back.
func (st *Stream) Refresh(ctx context.Context) error {
	return st.ensure(ctx, false)
}

// refresh looks the stream up again after a sequence anomaly, at most once
// per refreshSpacing, and reports whether the epoch changed.
func (st *Stream) refresh(ctx context.Context) bool {
	now := time.Now().UnixNano()
	last := st.lastRefresh.Load()
	if now-last < int64(refreshSpacing) || !st.lastRefresh.CompareAndSwap(last, now) {
		return false
	}
	before := st.Epoch()
	if err := st.ensure(ctx, false); err != nil {
		st.s.log.Debug("history stream refresh", "stream", st.name, "err", err)
		return false
	}
	return st.Epoch() != before
}
