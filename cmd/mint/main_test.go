package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/roomcast/roomcast/pkg/bus"
	"github.com/roomcast/roomcast/pkg/bus/bustest"
	"github.com/roomcast/roomcast/pkg/keys"
)

// node starts a real NATS, a key store and the rc.keys.mint responder, as
// a roomcast node would run them.
func node(t *testing.T) (*server.Server, *keys.Store) {
	t.Helper()
	srv := bustest.RunServer(t)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	b, err := bus.Connect(ctx, bus.Options{URLs: srv.ClientURL()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	bustest.Eventually(t, 5*time.Second, b.Up, "not connected")
	st, err := keys.NewStore(ctx, b.JS, keys.StoreOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := keys.Serve(ctx, b.NC, bus.Subjects{}, st, nil); err != nil {
		t.Fatal(err)
	}
	return srv, st
}

func mint(t *testing.T, args ...string) (string, string, error) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	err := run(context.Background(), args, &stdout, &stderr)
	return stdout.String(), stderr.String(), err
}

// minted checks that out is one line of Minted JSON and returns it.
func minted(t *testing.T, out string) keys.Minted {
	t.Helper()
	if strings.Count(out, "\n") != 1 || !strings.HasSuffix(out, "\n") {
		t.Fatalf("stdout %q is not one line", out)
	}
	var m keys.Minted
	if err := json.Unmarshal([]byte(out), &m); err != nil || len(m.Key) != keys.SecretLen || m.URL != "/_/connect/"+m.Key {
		t.Fatalf("stdout %q: %v", out, err)
	}
	for _, field := range []string{`"key"`, `"url"`, `"session"`, `"expires_at"`} {
		if !strings.Contains(out, field) {
			t.Fatalf("stdout %q lacks %s", out, field)
		}
	}
	return m
}

func TestMintOverNATS(t *testing.T) {
	srv, st := node(t)
	out, stderr, err := mint(t, "--nats", srv.ClientURL(), "--user", "alice", "--meta", `{"name":"Alice"}`,
		"--room", "lobby", "--room", "team.a,team.b", "--allow", "team.*", "--allow", "chat.>",
		"--ttl", "90s", "--session", "tab-1")
	if err != nil {
		t.Fatalf("run: %v (stderr %q)", err, stderr)
	}
	m := minted(t, out)
	if m.Session != "tab-1" {
		t.Fatalf("session %q, want tab-1", m.Session)
	}
	if d := time.Until(m.ExpiresAt); d < 80*time.Second || d > 91*time.Second {
		t.Fatalf("expires in %s, want ~90s", d)
	}
	c, err := st.Redeem(context.Background(), m.Key)
	if err != nil {
		t.Fatalf("Redeem: %v", err)
	}
	got, _ := json.Marshal(c)
	want, _ := json.Marshal(keys.Claims{User: "alice", Meta: json.RawMessage(`{"name":"Alice"}`),
		Rooms: []string{"lobby", "team.a", "team.b"}, Allow: []string{"team.*", "chat.>"}, Session: "tab-1"})
	if string(got) != string(want) {
		t.Fatalf("claims %s, want %s", got, want)
	}
}

func TestMintOverHTTP(t *testing.T) {
	_, st := node(t)
	ts := httptest.NewServer(keys.Handler(st, "k3y", 0, 0))
	defer ts.Close()

	out, _, err := mint(t, "--http", ts.URL, "--api-key", "k3y", "--user", "u2", "--room", "lobby")
	if err != nil {
		t.Fatal(err)
	}
	c, err := st.Redeem(context.Background(), minted(t, out).Key)
	if err != nil || c.User != "u2" || len(c.Rooms) != 1 || c.Session == "" {
		t.Fatalf("Redeem = %+v, %v", c, err)
	}

	// The key may come from the environment, the URL may name the path.
	t.Setenv("ROOMCAST_API_KEY", "k3y")
	out, _, err = mint(t, "--http", ts.URL+"/_/keys/")
	if err != nil {
		t.Fatal(err)
	}
	minted(t, out)
}

func TestMintErrors(t *testing.T) {
	srv, st := node(t)
	ts := httptest.NewServer(keys.Handler(st, "k3y", 0, 0))
	defer ts.Close()
	silent := bustest.RunServer(t) // NATS without a roomcast node
	notNode := httptest.NewServer(http.NotFoundHandler())
	defer notNode.Close()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	nobody := "nats://127.0.0.1:" + strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
	l.Close()
	t.Setenv("ROOMCAST_API_KEY", "")

	tests := []struct {
		name string
		args []string
		want []string
	}{
		{"no node", []string{"--nats", silent.ClientURL()},
			[]string{"no roomcast node answered on rc.keys.mint at " + silent.ClientURL(), "is a node running with that NATS?"}},
		{"no NATS", []string{"--nats", nobody}, []string{"cannot connect to NATS at " + nobody, "go run ./cmd/node"}},
		{"credentials hidden", []string{"--nats", "nats://user:hunter2@" + strings.TrimPrefix(nobody, "nats://")}, []string{"cannot connect"}},
		{"bad room", []string{"--nats", srv.ClientURL(), "--room", "a b"}, []string{`rooms[0]: room "a b" is invalid`}},
		{"bad session", []string{"--nats", srv.ClientURL(), "--session", "x.y"}, []string{`session "x.y" is invalid`}},
		{"bad meta", []string{"--meta", "{name:1}"}, []string{"--meta is not valid JSON"}},
		{"negative ttl", []string{"--ttl", "-1m"}, []string{"negative"}},
		{"ttl too long", []string{"--nats", srv.ClientURL(), "--ttl", "48h"}, []string{"too long"}},
		{"both", []string{"--nats", srv.ClientURL(), "--http", ts.URL}, []string{"not both"}},
		{"http without key", []string{"--http", ts.URL}, []string{"--api-key", "ROOMCAST_API_KEY"}},
		{"wrong key", []string{"--http", ts.URL, "--api-key", "nope"}, []string{"answered 401", "wrong API key"}},
		{"not a node", []string{"--http", notNode.URL, "--api-key", "k3y"}, []string{"answered 404 Not Found", "started with --api-key"}},
		{"stray argument", []string{"alice"}, []string{`unexpected argument "alice"`, "--user alice"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, _, err := mint(t, tt.args...)
			if err == nil {
				t.Fatalf("no error; stdout %q", out)
			}
			if out != "" {
				t.Fatalf("stdout %q on error", out)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Errorf("error %q shows the NATS password", err)
			}
		})
	}
}

func TestMintFlags(t *testing.T) {
	_, stderr, err := mint(t, "-h")
	if !errors.Is(err, flag.ErrHelp) || !strings.Contains(stderr, "--nats URL | --http URL --api-key K") || !strings.Contains(stderr, "-room") {
		t.Fatalf("-h: %v, usage %q", err, stderr)
	}
	_, stderr, err = mint(t, "--bogus")
	var u usageError
	if !errors.As(err, &u) || !strings.Contains(stderr, "flag provided but not defined: -bogus") {
		t.Fatalf("--bogus: %v, stderr %q", err, stderr)
	}
}
