package keys

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"

	"github.com/roomcast/roomcast/pkg/bus"
	"github.com/roomcast/roomcast/pkg/metrics"
)

var (
	// ErrInvalidKey means the key is malformed, unknown, expired, already
	// used, or was just used by someone else: the node answers HTTP 401 /
	// close 4001. The cases are not told apart, so a caller learns nothing
	// about keys it does not hold.
	ErrInvalidKey = errors.New("invalid, expired or already used key")
	// ErrUnavailable means NATS or JetStream did not answer: the node
	// answers 503 / `unavailable`, and the caller may retry the same key
	// (unless the failure hit after the key was consumed).
	ErrUnavailable = errors.New("key store unavailable")
	// ErrBadRequest is wrapped by errors about the claims or the TTL of a
	// mint request; their message is written for the caller.
	ErrBadRequest = errors.New("bad mint request")
)

const (
	// DefaultTTL is how long a key lives when the request names no TTL:
	// long enough for a page to load and open its socket.
	DefaultTTL = 2 * time.Minute
	// DefaultMaxTTL caps requested TTLs: a key is a bearer credential, so
	// it must not outlive a working day.
	DefaultMaxTTL = 24 * time.Hour
	// SecretLen is the length of a key as handed out: 32 bytes in base64url
	// without padding.
	SecretLen = 43

	secretBytes = 32
	// markerTTL is how long the markers of used and expired keys stay in
	// the bucket, so that `nats kv watch rc-keys` observers see them, before
	// JetStream removes them and the bucket shrinks back.
	markerTTL = 5 * time.Second
	// maxValue bounds one entry: claims within their limits fit easily.
	maxValue = 64 << 10
	// bindTimeout bounds one attempt to open the bucket; bindRetry spaces
	// the background attempts while NATS is unreachable at start.
	bindTimeout = 5 * time.Second
	bindRetry   = time.Second
)

// StoreOptions configure NewStore. Zero values take the defaults named.
type StoreOptions struct {
	// Bucket is the JetStream KV bucket; empty means bus.KeysBucket
	// ("rc-keys").
	Bucket string
	// Replicas is the bucket's replica count when this store creates it
	// (--keys-replicas); 0 means 1. Use 3 on a 3-server NATS cluster so keys
	// survive a server loss. An existing bucket keeps its own setting.
	Replicas int
	// DefaultTTL applies when Mint gets ttl 0; 0 means DefaultTTL.
	DefaultTTL time.Duration
	// MaxTTL is the longest TTL Mint accepts; 0 means DefaultMaxTTL.
	MaxTTL time.Duration
	// Metrics, if not nil, counts mints and redemptions in Keys.
	Metrics *metrics.Metrics
	// Logger gets key events at debug (with a hash prefix, never the key)
	// and store trouble at warn; nil discards them.
	Logger *slog.Logger
}

// Store mints and redeems keys in a JetStream KV bucket. It is safe for
// concurrent use; any number of Stores on any number of nodes may share the
// bucket.
type Store struct {
	js         jetstream.JetStream
	bucket     string
	replicas   int
	defaultTTL time.Duration
	maxTTL     time.Duration
	metrics    *metrics.Metrics
	log        *slog.Logger

	kv     atomic.Pointer[jetstream.KeyValue] // nil until the bucket is open
	bindMu sync.Mutex                         // one opening attempt at a time
}

// Minted is a new key, as POST /_/keys, rc.keys.mint and roomcast-mint
// return it. Key is the secret: hand it to one browser, do not log it.
type Minted struct {
	// Key is the one-time secret, SecretLen chars of base64url.
	Key string `json:"key"`
	// URL is the path to open the socket with: "/_/connect/<key>".
	URL string `json:"url"`
	// Session is the id the socket will have (generated if not claimed).
	Session string `json:"session"`
	// ExpiresAt is when the key stops working, to the millisecond.
	ExpiresAt time.Time `json:"expires_at"`
}

// record is a bucket entry's value: the claims plus the exact expiry. The
// per-key TTL removes entries only to the second, so Redeem checks Exp.
type record struct {
	Claims
	Exp int64 `json:"exp"` // Unix milliseconds
}

// NewStore opens the key bucket, creating it with per-key TTLs if it does
// not exist, and returns a Store on it.
//
// If NATS is not reachable yet (a node may start before its NATS), NewStore
// still returns a Store: it keeps trying to open the bucket in the
// background, once a second until ctx ends, and Mint and Redeem return
// ErrUnavailable until it succeeds. Errors that retrying cannot fix are
// returned: bad options, NATS without JetStream, a server too old for
// per-key TTLs, a bucket that exists without them.
func NewStore(ctx context.Context, js jetstream.JetStream, o StoreOptions) (*Store, error) {
	s := &Store{
		js:         js,
		bucket:     o.Bucket,
		replicas:   o.Replicas,
		defaultTTL: o.DefaultTTL,
		maxTTL:     o.MaxTTL,
		metrics:    o.Metrics,
		log:        o.Logger,
	}
	if s.bucket == "" {
		s.bucket = bus.KeysBucket
	}
	if s.replicas == 0 {
		s.replicas = 1
	}
	if s.defaultTTL == 0 {
		s.defaultTTL = DefaultTTL
	}
	if s.maxTTL == 0 {
		s.maxTTL = DefaultMaxTTL
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	switch {
	case s.replicas < 1 || s.replicas > 5:
		return nil, fmt.Errorf("keys: replicas %d is invalid: use 1 to 5 (3 for a 3-server NATS cluster)", s.replicas)
	case s.defaultTTL < MinTTL:
		return nil, fmt.Errorf("keys: default key TTL %s is too short: use at least %s", s.defaultTTL, MinTTL)
	case s.defaultTTL > s.maxTTL:
		return nil, fmt.Errorf("keys: default key TTL %s exceeds the maximum %s", s.defaultTTL, s.maxTTL)
	}

	bctx, cancel := context.WithTimeout(ctx, bindTimeout)
	_, err := s.open(bctx)
	cancel()
	if err == nil {
		return s, nil
	}
	var ce *configError
	if errors.As(err, &ce) || ctx.Err() != nil {
		return nil, err
	}
	s.log.Warn("key bucket not reachable yet; keys answer unavailable until it is", "bucket", s.bucket, "err", err)
	go s.openLoop(ctx)
	return s, nil
}

// openLoop retries opening the bucket until it works or ctx ends.
func (s *Store) openLoop(ctx context.Context) {
	t := time.NewTicker(bindRetry)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		bctx, cancel := context.WithTimeout(ctx, bindTimeout)
		_, err := s.open(bctx)
		cancel()
		var ce *configError
		switch {
		case err == nil:
			s.log.Info("key bucket open", "bucket", s.bucket)
			return
		case errors.As(err, &ce):
			// Retrying cannot help; Mint and Redeem keep answering
			// unavailable, and /readyz stays false.
			s.log.Error("key bucket unusable", "bucket", s.bucket, "err", err)
			return
		}
		s.log.Debug("key bucket still not reachable", "bucket", s.bucket, "err", err)
	}
}

// configError is an error NewStore must not retry.
type configError struct{ msg string }

func (e *configError) Error() string { return e.msg }

// open returns the bucket, opening (and if need be creating) it on first
// use. Hot path after the first call: one atomic load.
func (s *Store) open(ctx context.Context) (jetstream.KeyValue, error) {
	if p := s.kv.Load(); p != nil {
		return *p, nil
	}
	s.bindMu.Lock()
	defer s.bindMu.Unlock()
	if p := s.kv.Load(); p != nil {
		return *p, nil
	}
	// Asking for the account first tells "no JetStream here" (a setup
	// error) from "NATS not reachable" (retry): bucket lookups answer both
	// with the same no-responders error.
	if _, err := s.js.AccountInfo(ctx); err != nil {
		if errors.Is(err, jetstream.ErrJetStreamNotEnabled) || errors.Is(err, jetstream.ErrJetStreamNotEnabledForAccount) {
			return nil, &configError{"keys: NATS has no JetStream, which holds the key bucket: start nats-server with -js (or enable JetStream for this account)"}
		}
		return nil, fmt.Errorf("keys: open bucket %s: %w", s.bucket, err)
	}
	kv, err := s.js.KeyValue(ctx, s.bucket)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		kv, err = s.js.CreateKeyValue(ctx, jetstream.KeyValueConfig{
			Bucket:       s.bucket,
			Description:  "roomcast one-time connection keys: entry = hex SHA-256 of the key, value = claims and expiry",
			History:      1,
			Replicas:     s.replicas,
			Storage:      jetstream.FileStorage,
			MaxValueSize: maxValue,
			// Non-zero turns on per-message TTLs (AllowMsgTTL), which
			// KeyTTL and PurgeTTL need; nats-server 2.11+.
			LimitMarkerTTL: markerTTL,
		})
		if errors.Is(err, jetstream.ErrBucketExists) {
			// Another node created it first, or with other options.
			kv, err = s.js.KeyValue(ctx, s.bucket)
		}
	}
	switch {
	case errors.Is(err, jetstream.ErrLimitMarkerTTLNotSupported):
		return nil, &configError{"keys: this NATS server cannot expire single keys: use nats-server 2.11 or newer"}
	case err != nil:
		return nil, fmt.Errorf("keys: open bucket %s: %w", s.bucket, err)
	}
	st, err := kv.Status(ctx)
	if err != nil {
		return nil, fmt.Errorf("keys: bucket %s status: %w", s.bucket, err)
	}
	if st.LimitMarkerTTL() == 0 {
		return nil, &configError{fmt.Sprintf("keys: bucket %s exists without per-key TTLs, so keys would never expire: "+
			"remove it with `nats kv rm %s` (unused keys are lost) and restart, or configure another bucket", s.bucket, s.bucket)}
	}
	if bs, ok := st.(*jetstream.KeyValueBucketStatus); ok && bs.Config().Replicas != s.replicas {
		s.log.Warn("key bucket exists with another replica count; keeping it",
			"bucket", s.bucket, "replicas", bs.Config().Replicas, "wanted", s.replicas)
	}
	s.kv.Store(&kv)
	return kv, nil
}

// Mint stores a new key for c, valid for ttl (0 means the store's default),
// and returns it. The key is in the result only: it is never stored, and
// logs carry at most a prefix of its hash. If c.Session is empty a session
// id is generated. Errors wrap ErrBadRequest (c or ttl is wrong; the message
// says how) or ErrUnavailable.
func (s *Store) Mint(ctx context.Context, c Claims, ttl time.Duration) (Minted, error) {
	ttl, err := resolveTTL(ttl, s.defaultTTL, s.maxTTL)
	if err != nil {
		s.count("mint", "invalid")
		return Minted{}, err
	}
	if err := c.Validate(); err != nil {
		s.count("mint", "invalid")
		return Minted{}, err
	}
	if c.Session == "" {
		c.Session = nuid.Next()
	}
	kv, err := s.open(ctx)
	if err != nil {
		s.count("mint", "error")
		return Minted{}, fmt.Errorf("keys: mint: %w: %w", ErrUnavailable, err)
	}

	var raw [secretBytes]byte
	rand.Read(raw[:]) // never fails (crypto/rand, Go 1.24+)
	secret := base64.RawURLEncoding.EncodeToString(raw[:])
	id := hashKey(&raw)

	exp := time.Now().Add(ttl).UnixMilli()
	value, err := encodeRecord(record{Claims: c, Exp: exp})
	if err != nil { // only if Validate let bad meta through
		s.count("mint", "invalid")
		return Minted{}, badRequest("claims cannot be encoded: %v", err)
	}
	// JetStream TTLs are whole seconds, truncated: round up so the entry
	// never disappears before exp. Redeem enforces exp to the millisecond.
	err = bus.RetryNoResponders(ctx, bus.NoResponders, func() error {
		_, err := kv.Create(ctx, id, value, jetstream.KeyTTL((ttl + time.Second - 1).Truncate(time.Second)))
		return err
	})
	if err != nil {
		s.count("mint", "error")
		s.log.Warn("key not stored", "bucket", s.bucket, "err", err)
		return Minted{}, fmt.Errorf("keys: mint: %w: %w", ErrUnavailable, err)
	}
	s.count("mint", "ok")
	s.log.Debug("key minted", "key_hash", id[:8], "session", c.Session, "user", c.User, "ttl", ttl)
	return Minted{
		Key:       secret,
		URL:       "/_/connect/" + secret,
		Session:   c.Session,
		ExpiresAt: time.UnixMilli(exp).UTC(),
	}, nil
}

// Redeem consumes the key secret and returns its claims. Exactly one call
// per key succeeds, across all nodes: the entry is purged on the condition
// that its revision is still the one read. Malformed, unknown, expired and
// used keys, and the losers of a race, get ErrInvalidKey; a malformed key
// is refused without a NATS round trip. NATS failures get ErrUnavailable.
func (s *Store) Redeem(ctx context.Context, secret string) (Claims, error) {
	id, ok := parseKey(secret)
	if !ok {
		s.count("redeem", "invalid")
		return Claims{}, fmt.Errorf("keys: redeem: %w", ErrInvalidKey)
	}
	kv, err := s.open(ctx)
	if err != nil {
		s.count("redeem", "error")
		return Claims{}, fmt.Errorf("keys: redeem: %w: %w", ErrUnavailable, err)
	}
	var e jetstream.KeyValueEntry
	err = bus.RetryNoResponders(ctx, bus.NoResponders, func() (err error) {
		e, err = kv.Get(ctx, id)
		return err
	})
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return Claims{}, s.invalid(id, "unknown or used")
	}
	if err != nil {
		s.count("redeem", "error")
		return Claims{}, fmt.Errorf("keys: redeem: %w: %w", ErrUnavailable, err)
	}
	var rec record
	if err := json.Unmarshal(e.Value(), &rec); err != nil || rec.Exp == 0 {
		s.log.Warn("key entry unreadable; refusing it", "key_hash", id[:8], "bucket", s.bucket)
		return Claims{}, s.invalid(id, "unreadable")
	}
	if time.Now().UnixMilli() >= rec.Exp {
		return Claims{}, s.invalid(id, "expired")
	}
	// The purge replaces the entry with a marker (itself gone after
	// markerTTL) only if nobody wrote the key since our Get: of all
	// concurrent redeemers, one purge lands, the rest see a wrong last
	// sequence.
	err = bus.RetryNoResponders(ctx, bus.NoResponders, func() error {
		return kv.Purge(ctx, id, jetstream.LastRevision(e.Revision()), jetstream.PurgeTTL(markerTTL))
	})
	if revisionConflict(err) {
		return Claims{}, s.invalid(id, "lost race")
	}
	if err != nil {
		s.count("redeem", "error")
		return Claims{}, fmt.Errorf("keys: redeem: %w: %w", ErrUnavailable, err)
	}
	s.count("redeem", "ok")
	s.log.Debug("key redeemed", "key_hash", id[:8], "session", rec.Session, "user", rec.User)
	return rec.Claims, nil
}

func (s *Store) invalid(id, why string) error {
	s.count("redeem", "invalid")
	s.log.Debug("key refused", "key_hash", id[:8], "why", why)
	return fmt.Errorf("keys: redeem: %w", ErrInvalidKey)
}

func (s *Store) count(op, result string) {
	if s.metrics != nil {
		s.metrics.Keys.WithLabelValues(op, result).Inc()
	}
}

// parseKey checks that secret has the shape of a key and returns its entry
// name. Strict decoding rejects the non-canonical spellings of the last
// char, so one key has exactly one valid string.
func parseKey(secret string) (string, bool) {
	if len(secret) != SecretLen {
		return "", false
	}
	var raw [secretBytes]byte
	n, err := base64.RawURLEncoding.Strict().Decode(raw[:], []byte(secret))
	if err != nil || n != secretBytes {
		return "", false
	}
	return hashKey(&raw), true
}

// hashKey is the bucket entry name of a key: hex SHA-256 of its 32 bytes.
func hashKey(raw *[secretBytes]byte) string {
	sum := sha256.Sum256(raw[:])
	return hex.EncodeToString(sum[:])
}

// revisionConflict reports a failed revision check: 10071 on R1 streams,
// 10164 on replicated ones.
func revisionConflict(err error) bool {
	var api *jetstream.APIError
	return errors.As(err, &api) &&
		(api.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
			api.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant)
}

// requestError is a mint request problem; its message is for the caller.
type requestError struct{ msg string }

func (e *requestError) Error() string        { return e.msg }
func (e *requestError) Is(target error) bool { return target == ErrBadRequest }

func badRequest(format string, args ...any) error {
	return &requestError{msg: fmt.Sprintf(format, args...)}
}

// encodeRecord is json.Marshal without HTML escaping, so meta comes back
// from the bucket byte for byte as the back-end wrote it ("&" stays "&",
// not "\u0026"; found by FuzzClaimsValidate).
func encodeRecord(r record) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(r); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}
