package main

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

// Every option is a flag, an env var and a YAML key, with one precedence:
// flag > env > YAML > default.
func TestEveryOptionHasFlagEnvAndYAML(t *testing.T) {
	for _, o := range newConfig().table {
		if o.name == "config" {
			continue
		}
		val := sampleValue(o.name)
		t.Run(o.name, func(t *testing.T) {
			// flag
			c := newConfig()
			if err := c.load([]string{"--" + o.name + "=" + val}, env(nil), io.Discard); err != nil {
				t.Fatalf("flag: %v", err)
			}
			if got := lookup(c, o.name); got != val {
				t.Fatalf("flag: got %q want %q", got, val)
			}
			// env
			c = newConfig()
			if err := c.load(nil, env(map[string]string{envName(o.name): val}), io.Discard); err != nil {
				t.Fatalf("env: %v", err)
			}
			if got := lookup(c, o.name); got != val {
				t.Fatalf("env %s: got %q want %q", envName(o.name), got, val)
			}
			// YAML
			f := filepath.Join(t.TempDir(), "c.yaml")
			os.WriteFile(f, []byte(o.name+": "+yamlQuote(val)+"\n"), 0o600)
			c = newConfig()
			if err := c.load([]string{"--config", f}, env(nil), io.Discard); err != nil {
				t.Fatalf("yaml: %v", err)
			}
			if got := lookup(c, o.name); got != val {
				t.Fatalf("yaml: got %q want %q", got, val)
			}
		})
	}
}

func TestPrecedence(t *testing.T) {
	f := filepath.Join(t.TempDir(), "c.yaml")
	os.WriteFile(f, []byte("listen: :1\nkey-ttl: 1m\nnode-id: y\n"), 0o600)
	c := newConfig()
	err := c.load([]string{"--config", f, "--listen", ":3"},
		env(map[string]string{"ROOMCAST_LISTEN": ":2", "ROOMCAST_KEY_TTL": "5m"}), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.opts.Listen != ":3" || c.opts.KeyTTL != 5*time.Minute || c.opts.NodeID != "y" {
		t.Fatalf("got listen %q ttl %v id %q", c.opts.Listen, c.opts.KeyTTL, c.opts.NodeID)
	}
}

func TestRoutesAndErrors(t *testing.T) {
	f := filepath.Join(t.TempDir(), "c.yaml")
	os.WriteFile(f, []byte("routes:\n  - path: /chat\n    auth: public\n    rooms: [lobby]\n    allow: [\"chat.>\"]\n"), 0o600)
	c := newConfig()
	if err := c.load([]string{"--config", f}, env(nil), io.Discard); err != nil {
		t.Fatal(err)
	}
	if len(c.opts.Routes) != 1 || c.opts.Routes[0].Path != "/chat" || c.opts.Routes[0].Allow[0] != "chat.>" {
		t.Fatalf("routes: %+v", c.opts.Routes)
	}
	os.WriteFile(f, []byte("lisen: :1\n"), 0o600)
	if err := newConfig().load([]string{"--config", f}, env(nil), io.Discard); err == nil || !strings.Contains(err.Error(), "lisen") {
		t.Fatalf("unknown key not reported: %v", err)
	}
	if err := newConfig().load([]string{"--key-ttl", "soon"}, env(nil), io.Discard); err == nil {
		t.Fatal("bad duration accepted")
	}
	if err := newConfig().load(nil, env(map[string]string{"ROOMCAST_MAX_ROOMS": "many"}), io.Discard); err == nil || !strings.Contains(err.Error(), "ROOMCAST_MAX_ROOMS") {
		t.Fatalf("bad env not named: %v", err)
	}
}

func TestDemoDefaultsToEmbedded(t *testing.T) {
	c := newConfig()
	_ = c.load(nil, env(nil), io.Discard)
	if !c.opts.Demo {
		t.Fatal("demo off with embedded NATS")
	}
	c = newConfig()
	_ = c.load([]string{"--nats", "nats://x:4222"}, env(nil), io.Discard)
	if c.opts.Demo {
		t.Fatal("demo on with external NATS")
	}
}

func sampleValue(name string) string {
	for _, o := range newConfig().table {
		if o.name != name {
			continue
		}
		switch o.value.(type) {
		case *durationValue:
			return "3m0s"
		case *intValue:
			return "7"
		case *floatValue:
			return "2.5"
		case *boolValue:
			if o.value.String() == "true" {
				return "false"
			}
			return "true"
		case *listValue:
			return "a,b"
		}
	}
	switch name {
	case "demo":
		return "on"
	case "log-level":
		return "debug"
	}
	return "x-" + name
}

func lookup(c *config, name string) string {
	for _, o := range c.table {
		if o.name == name {
			return o.value.String()
		}
	}
	return ""
}

func yamlQuote(v string) string {
	if strings.Contains(v, ",") {
		return "[" + v + "]"
	}
	return "\"" + v + "\""
}

// The README's configuration reference names every option.
func TestREADMEDocumentsEveryOption(t *testing.T) {
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range newConfig().table {
		if !strings.Contains(string(b), "`--"+o.name+"`") {
			t.Errorf("README.md does not document --%s", o.name)
		}
	}
}

// A bad gossip key from the env stops the node at start, naming the flag
// and never echoing the secret.
func TestBadGossipKeyRefusedAtStart(t *testing.T) {
	err := run(nil, env(map[string]string{"ROOMCAST_GOSSIP_KEY": "hunter2hunter2", "ROOMCAST_NODE_ID": "x"}), io.Discard)
	if err == nil || !strings.Contains(err.Error(), "--gossip-key") || !strings.Contains(err.Error(), "head -c 32 /dev/urandom | base64") {
		t.Fatalf("bad ROOMCAST_GOSSIP_KEY: %v", err)
	}
	if strings.Contains(err.Error(), "hunter2") {
		t.Fatalf("the error shows the key: %v", err)
	}
}
