package keys

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/roomcast/roomcast/pkg/bus"
	"github.com/roomcast/roomcast/pkg/bus/bustest"
	"github.com/roomcast/roomcast/pkg/metrics"
)

// newStore opens a Store on a fresh connection to s, made by bus.Connect
// as a node makes it.
func newStore(t testing.TB, s *server.Server, o StoreOptions) *Store {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	b, err := bus.Connect(ctx, bus.Options{URLs: s.ClientURL()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	bustest.Eventually(t, 5*time.Second, b.Up, "not connected to %s", s.ClientURL())
	st, err := NewStore(ctx, b.JS, o)
	if err != nil {
		t.Fatalf("NewStore: %v", err)
	}
	return st
}

func counter(m *metrics.Metrics, op, result string) float64 {
	var d dto.Metric
	if err := m.Keys.WithLabelValues(op, result).(prometheus.Metric).Write(&d); err != nil {
		panic(err)
	}
	return d.GetCounter().GetValue()
}

func mint(t testing.TB, st *Store, c Claims, ttl time.Duration) Minted {
	t.Helper()
	m, err := st.Mint(context.Background(), c, ttl)
	if err != nil {
		t.Fatalf("Mint: %v", err)
	}
	return m
}

func TestMintRedeem(t *testing.T) {
	srv := bustest.RunServer(t)
	m := metrics.New(nil)
	st := newStore(t, srv, StoreOptions{Metrics: m})
	ctx := context.Background()

	in := Claims{User: "alice", Meta: json.RawMessage(`{"name":"Ada"}`), Rooms: []string{"lobby"}, Allow: []string{"team.*"}}
	before := time.Now()
	k := mint(t, st, in, 0)
	if len(k.Key) != SecretLen {
		t.Fatalf("key %d chars, want %d", len(k.Key), SecretLen)
	}
	if raw, err := base64.RawURLEncoding.Strict().DecodeString(k.Key); err != nil || len(raw) != 32 {
		t.Fatalf("key is not 32 bytes of base64url: %v", err)
	}
	if k.URL != "/_/connect/"+k.Key {
		t.Fatalf("URL = %q", k.URL)
	}
	if k.Session == "" {
		t.Fatal("no session id generated")
	}
	if d := k.ExpiresAt.Sub(before); d < DefaultTTL-time.Second || d > DefaultTTL+time.Second {
		t.Fatalf("expires in %s, want about %s", d, DefaultTTL)
	}

	// The bucket holds the hash, never the key itself.
	kv, err := st.js.KeyValue(ctx, bus.KeysBucket)
	if err != nil {
		t.Fatal(err)
	}
	names, err := kv.ListKeys(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for name := range names.Keys() {
		e, err := kv.Get(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(name, k.Key) || strings.Contains(string(e.Value()), k.Key) {
			t.Fatal("the secret is stored in the bucket")
		}
		if id, _ := parseKey(k.Key); name != id || len(name) != 64 {
			t.Fatalf("entry %q, want the hex SHA-256 of the key", name)
		}
	}

	out, err := st.Redeem(ctx, k.Key)
	if err != nil {
		t.Fatalf("Redeem: %v", err)
	}
	want := in
	want.Session = k.Session
	gotJSON, _ := json.Marshal(out)
	wantJSON, _ := json.Marshal(want)
	if string(gotJSON) != string(wantJSON) {
		t.Fatalf("claims %s, want %s", gotJSON, wantJSON)
	}

	if _, err := st.Redeem(ctx, k.Key); !errors.Is(err, ErrInvalidKey) {
		t.Fatalf("second Redeem = %v, want ErrInvalidKey", err)
	}
	if counter(m, "mint", "ok") != 1 || counter(m, "redeem", "ok") != 1 || counter(m, "redeem", "invalid") != 1 {
		t.Fatalf("metrics mint ok %v, redeem ok %v, redeem invalid %v; want 1, 1, 1",
			counter(m, "mint", "ok"), counter(m, "redeem", "ok"), counter(m, "redeem", "invalid"))
	}
}

func TestMintSessionClaimed(t *testing.T) {
	st := newStore(t, bustest.RunServer(t), StoreOptions{})
	k := mint(t, st, Claims{Session: "tab-42"}, 0)
	if k.Session != "tab-42" {
		t.Fatalf("Session = %q, want the claimed tab-42", k.Session)
	}
	c, err := st.Redeem(context.Background(), k.Key)
	if err != nil || c.Session != "tab-42" {
		t.Fatalf("Redeem = %+v, %v", c, err)
	}
}

func TestMintRefused(t *testing.T) {
	st := newStore(t, bustest.RunServer(t), StoreOptions{MaxTTL: time.Hour})
	for _, tt := range []struct {
		c    Claims
		ttl  time.Duration
		want string
	}{
		{Claims{Rooms: []string{"a b"}}, 0, "rooms[0]"},
		{Claims{}, 2 * time.Hour, "too long"},
		{Claims{}, 10 * time.Millisecond, "too short"},
		{Claims{}, -time.Second, "negative"},
	} {
		_, err := st.Mint(context.Background(), tt.c, tt.ttl)
		if !errors.Is(err, ErrBadRequest) || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Mint(%+v, %s) = %v, want ErrBadRequest about %q", tt.c, tt.ttl, err, tt.want)
		}
	}
}

func TestRedeemUnknownAndMalformed(t *testing.T) {
	srv := bustest.RunServer(t)
	st := newStore(t, srv, StoreOptions{})
	ctx := context.Background()
	good := mint(t, st, Claims{}, 0).Key

	// A key that was never minted but has the right shape.
	unknown := base64.RawURLEncoding.EncodeToString(make([]byte, 32))
	if _, err := st.Redeem(ctx, unknown); !errors.Is(err, ErrInvalidKey) {
		t.Fatalf("unknown key: %v, want ErrInvalidKey", err)
	}

	// The last char of 43 carries 2 spare bits; a non-canonical spelling
	// of the same 32 bytes must not be a second valid key.
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	last := strings.IndexByte(alphabet, good[42])
	nonCanonical := good[:42] + string(alphabet[last|1])

	malformed := []string{
		"", "x", good[:42], good + "A", good[:42] + "=", good[:42] + "!", good[:41] + "+/",
		strings.Repeat(" ", SecretLen), nonCanonical, "/_/connect/" + good,
	}
	// Malformed keys are refused before NATS: close the connection to prove it.
	srv.Shutdown()
	for _, k := range malformed {
		if _, err := st.Redeem(ctx, k); !errors.Is(err, ErrInvalidKey) {
			t.Errorf("Redeem(%q) = %v, want ErrInvalidKey without touching NATS", k, err)
		}
	}
}

// TestKeyTTL checks that this nats-server really expires single keys, and
// that an expired key is refused.
func TestKeyTTL(t *testing.T) {
	t.Parallel() // waits for real TTLs
	st := newStore(t, bustest.RunServer(t), StoreOptions{})
	ctx := context.Background()
	k := mint(t, st, Claims{}, time.Second)
	id, _ := parseKey(k.Key)
	kv, err := st.open(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Get(ctx, id); err != nil {
		t.Fatalf("fresh entry: %v", err)
	}
	bustest.Eventually(t, 5*time.Second, func() bool { return !time.Now().Before(k.ExpiresAt) }, "clock never passed expiry")
	if _, err := st.Redeem(ctx, k.Key); !errors.Is(err, ErrInvalidKey) {
		t.Fatalf("Redeem after expiry = %v, want ErrInvalidKey", err)
	}
	// The server drops the entry by itself (TTL granularity is 1 s).
	bustest.Eventually(t, 5*time.Second, func() bool {
		_, err := kv.Get(ctx, id)
		return errors.Is(err, jetstream.ErrKeyNotFound)
	}, "entry %s still in the bucket after its TTL", id[:8])

	// The bucket empties itself: markers expire too.
	bustest.Eventually(t, markerTTL+10*time.Second, func() bool {
		st, err := kv.Status(ctx)
		return err == nil && st.Values() == 0
	}, "bucket not empty after the marker TTL")
}

// TestExpiryInValue covers the window in which the server still holds an
// entry whose exact expiry has passed.
func TestExpiryInValue(t *testing.T) {
	st := newStore(t, bustest.RunServer(t), StoreOptions{})
	ctx := context.Background()
	kv, err := st.open(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var raw [secretBytes]byte
	raw[0] = 1
	secret := base64.RawURLEncoding.EncodeToString(raw[:])
	v, _ := json.Marshal(record{Claims: Claims{User: "late"}, Exp: time.Now().Add(-time.Millisecond).UnixMilli()})
	if _, err := kv.Create(ctx, hashKey(&raw), v, jetstream.KeyTTL(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Redeem(ctx, secret); !errors.Is(err, ErrInvalidKey) {
		t.Fatalf("Redeem of an entry past its exp = %v, want ErrInvalidKey", err)
	}
}

// race redeems key from n goroutines spread over stores and returns the
// number of winners; any error other than ErrInvalidKey fails the test.
func race(t *testing.T, key string, n int, stores ...*Store) int {
	t.Helper()
	var wins atomic.Int32
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			_, err := stores[i%len(stores)].Redeem(context.Background(), key)
			switch {
			case err == nil:
				wins.Add(1)
			case !errors.Is(err, ErrInvalidKey):
				t.Errorf("loser got %v, want ErrInvalidKey", err)
			}
		})
	}
	close(start)
	wg.Wait()
	return int(wins.Load())
}

func TestRedeemRace(t *testing.T) {
	st := newStore(t, bustest.RunServer(t), StoreOptions{})
	for round := range 20 {
		k := mint(t, st, Claims{}, 0)
		if w := race(t, k.Key, 50, st); w != 1 {
			t.Fatalf("round %d: %d winners, want exactly 1", round, w)
		}
	}
}

// TestRedeemRaceTwoNodes races two Stores on two connections, as two nodes
// would.
func TestRedeemRaceTwoNodes(t *testing.T) {
	srv := bustest.RunServer(t)
	a := newStore(t, srv, StoreOptions{})
	b := newStore(t, srv, StoreOptions{})
	for round := range 20 {
		k := mint(t, []*Store{a, b}[round%2], Claims{}, 0)
		if w := race(t, k.Key, 50, a, b); w != 1 {
			t.Fatalf("round %d: %d winners, want exactly 1", round, w)
		}
	}
}

func TestBucketWithoutTTL(t *testing.T) {
	srv := bustest.RunServer(t)
	js, err := jetstream.New(bustest.Connect(t, srv))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: bus.KeysBucket}); err != nil {
		t.Fatal(err)
	}
	_, err = NewStore(ctx, js, StoreOptions{})
	if err == nil || !strings.Contains(err.Error(), "without per-key TTLs") || !strings.Contains(err.Error(), "nats kv rm rc-keys") {
		t.Fatalf("NewStore on a bucket without TTLs = %v, want a clear error", err)
	}
}

func TestNoJetStream(t *testing.T) {
	srv, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	go srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		t.Fatal("server not ready")
	}
	t.Cleanup(srv.Shutdown)
	js, err := jetstream.New(bustest.Connect(t, srv))
	if err != nil {
		t.Fatal(err)
	}
	_, err = NewStore(context.Background(), js, StoreOptions{})
	if err == nil || !strings.Contains(err.Error(), "-js") {
		t.Fatalf("NewStore without JetStream = %v, want a hint to enable it", err)
	}
}

func TestStoreOptions(t *testing.T) {
	srv := bustest.RunServer(t)
	js, err := jetstream.New(bustest.Connect(t, srv))
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range []StoreOptions{
		{Replicas: 7}, {Replicas: -1}, {DefaultTTL: time.Millisecond}, {DefaultTTL: 2 * time.Hour, MaxTTL: time.Hour},
	} {
		if _, err := NewStore(context.Background(), js, o); err == nil {
			t.Errorf("NewStore(%+v) accepted", o)
		}
	}
}

// TestNATSDown: NATS trouble is ErrUnavailable, never ErrInvalidKey, and
// with the bus's connection options (no reconnect buffer) it is immediate.
func TestNATSDown(t *testing.T) {
	srv := bustest.RunServer(t)
	ctx := context.Background()
	b, err := bus.Connect(ctx, bus.Options{URLs: srv.ClientURL()})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	bustest.Eventually(t, 5*time.Second, b.Up, "not connected")
	st, err := NewStore(ctx, b.JS, StoreOptions{})
	if err != nil {
		t.Fatal(err)
	}
	k := mint(t, st, Claims{}, 0)
	srv.Shutdown()
	srv.WaitForShutdown()
	bustest.Eventually(t, 5*time.Second, func() bool { return !b.Up() }, "still up")

	start := time.Now()
	if _, err := st.Redeem(ctx, k.Key); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Redeem with NATS down = %v, want ErrUnavailable", err)
	}
	if _, err := st.Mint(ctx, Claims{}, 0); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Mint with NATS down = %v, want ErrUnavailable", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("failing took %s; want at once", d)
	}
}

// TestStartBeforeNATS: a node whose NATS comes up later gets a working
// Store once it does, without restarting.
func TestStartBeforeNATS(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	b, err := bus.Connect(ctx, bus.Options{URLs: "nats://127.0.0.1:" + strconv.Itoa(port)})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	st, err := NewStore(ctx, b.JS, StoreOptions{})
	if err != nil {
		t.Fatalf("NewStore before NATS is up: %v", err)
	}
	if _, err := st.Mint(ctx, Claims{}, 0); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Mint before NATS is up = %v, want ErrUnavailable", err)
	}
	bustest.RunServerWith(t, &server.Options{Port: port})
	bustest.Eventually(t, 15*time.Second, func() bool { return b.Ready(ctx) == nil },
		"the bucket never appeared after NATS came up")
	k := mint(t, st, Claims{}, 0)
	if _, err := st.Redeem(ctx, k.Key); err != nil {
		t.Fatalf("Redeem: %v", err)
	}
}

func BenchmarkMintRedeem(b *testing.B) {
	st := newStore(b, bustest.RunServer(b), StoreOptions{})
	ctx := context.Background()
	c := Claims{User: "bench", Rooms: []string{"lobby"}, Meta: json.RawMessage(`{"n":1}`)}
	b.ReportAllocs()
	for b.Loop() {
		k, err := st.Mint(ctx, c, 0)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := st.Redeem(ctx, k.Key); err != nil {
			b.Fatal(err)
		}
	}
}
