// Command composecheck validates docker-compose.yml without a Docker engine:
// compose-go (the library behind `docker compose`) loads it, which checks it
// against the Compose specification's JSON schema, interpolates variables and
// checks consistency (services, volumes, depends_on). Then it checks what the
// roomcast cluster needs: 3 NATS servers with JetStream routed to each
// other, roomcast nodes pointed at all of them and gossiping with each other,
// the nginx load balancer's upstreams matching the nodes, and the ticker;
// the API key and the gossip key are given as env, not flags.
//
// Usage: composecheck [-f docker-compose.yml] [-node-config cmd/node/config.go]
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"

	"github.com/roomcast/roomcast/deploy/check/internal/nodeflags"
)

// nodeFlags are the roomcast-node flags (read from cmd/node/config.go).
var nodeFlags []string

type checker struct{ errs []string }

func (c *checker) failf(format string, args ...any) {
	c.errs = append(c.errs, fmt.Sprintf(format, args...))
}

func main() {
	file := flag.String("f", "docker-compose.yml", "compose file")
	nodeConfig := flag.String("node-config", "cmd/node/config.go", "the node's option table (flag names)")
	flag.Parse()
	var err error
	if nodeFlags, err = nodeflags.Load(*nodeConfig); err != nil {
		fatal(err)
	}
	abs, err := filepath.Abs(*file)
	if err != nil {
		fatal(err)
	}
	dir := filepath.Dir(abs)
	// Load with an empty environment so that the defaults written in the
	// file (${VAR:-default}) are what is checked, whatever the caller's env.
	opts, err := cli.NewProjectOptions([]string{abs},
		cli.WithWorkingDirectory(dir),
		cli.WithEnv(nil),
		cli.WithName("roomcast"),
		cli.WithInterpolation(true),
		cli.WithNormalization(true),
		cli.WithConsistency(true),
		cli.WithResolvedPaths(true),
	)
	if err != nil {
		fatal(err)
	}
	project, err := opts.LoadProject(context.Background())
	if err != nil {
		fatal(fmt.Errorf("%s: %w", *file, err))
	}
	c := &checker{}
	c.check(project, dir)
	if len(c.errs) > 0 {
		for _, e := range c.errs {
			fmt.Fprintf(os.Stderr, "composecheck: %s: %s\n", *file, e)
		}
		os.Exit(1)
	}
	fmt.Printf("composecheck: %s: ok (%d services: %s)\n", *file, len(project.Services), strings.Join(project.ServiceNames(), ", "))
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "composecheck:", err)
	os.Exit(1)
}

// flagsOf parses "--name=value" / "--name value" arguments.
func flagsOf(args []string) map[string]string {
	out := map[string]string{}
	for i := 0; i < len(args); i++ {
		a := args[i]
		if !strings.HasPrefix(a, "--") {
			continue
		}
		name, val, ok := strings.Cut(strings.TrimPrefix(a, "--"), "=")
		if !ok && i+1 < len(args) && !strings.HasPrefix(args[i+1], "--") {
			val = args[i+1]
			i++
		}
		out[name] = val
	}
	return out
}

func byPrefix(p *types.Project, prefix string) []types.ServiceConfig {
	var out []types.ServiceConfig
	for _, name := range p.ServiceNames() {
		if regexp.MustCompile("^" + prefix + "-[0-9]+$").MatchString(name) {
			out = append(out, p.Services[name])
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

func (c *checker) check(p *types.Project, dir string) {
	nats := byPrefix(p, "nats")
	nodes := byPrefix(p, "roomcast")
	if len(nats) != 3 {
		c.failf("want 3 NATS services nats-1..3, have %d", len(nats))
	}
	if len(nodes) != 3 {
		c.failf("want 3 roomcast services roomcast-1..3, have %d", len(nodes))
	}

	// NATS: JetStream on, a cluster routed to every member, a volume each.
	var natsNames, routeWant []string
	for _, s := range nats {
		natsNames = append(natsNames, s.Name)
		routeWant = append(routeWant, "nats://"+s.Name+":6222")
	}
	stores := map[string]string{}
	for _, s := range nats {
		if !strings.HasPrefix(s.Image, "nats:2") {
			c.failf("%s: image %q is not nats:2.x", s.Name, s.Image)
		}
		f := flagsOf(s.Command)
		if _, ok := f["jetstream"]; !ok {
			c.failf("%s: JetStream is not enabled (--jetstream)", s.Name)
		}
		if f["server_name"] != s.Name {
			c.failf("%s: --server_name is %q, want the service name (JetStream needs unique names)", s.Name, f["server_name"])
		}
		if f["cluster_name"] == "" || f["cluster"] == "" {
			c.failf("%s: not clustered (--cluster_name, --cluster)", s.Name)
		}
		if got := strings.Split(f["routes"], ","); !sameSet(got, routeWant) {
			c.failf("%s: --routes=%s, want all of %v", s.Name, f["routes"], routeWant)
		}
		store := f["store_dir"]
		found := false
		for _, v := range s.Volumes {
			if v.Target == store && v.Type == types.VolumeTypeVolume {
				found = true
				if other, dup := stores[v.Source]; dup {
					c.failf("%s: volume %s is also used by %s", s.Name, v.Source, other)
				}
				stores[v.Source] = s.Name
			}
		}
		if store == "" || !found {
			c.failf("%s: the JetStream store dir (--store_dir=%s) is not on a named volume", s.Name, store)
		}
		if s.HealthCheck == nil || len(s.HealthCheck.Test) == 0 {
			c.failf("%s: no healthcheck (the nodes wait for NATS to be healthy)", s.Name)
		}
	}

	// roomcast nodes.
	var nodeNames []string
	for _, s := range nodes {
		nodeNames = append(nodeNames, s.Name)
	}
	ids := map[string]string{}
	gossipKey := "" // the first node's
	for _, s := range nodes {
		f := flagsOf(s.Command)
		for name := range f {
			if !slices.Contains(nodeFlags, name) {
				c.failf("%s: unknown roomcast-node flag --%s", s.Name, name)
			}
		}
		for _, a := range s.Command {
			if !strings.HasPrefix(a, "--") {
				c.failf("%s: command argument %q is not a --flag=value (the image's entrypoint is roomcast-node)", s.Name, a)
			}
		}
		var natsURLs []string
		for _, n := range natsNames {
			natsURLs = append(natsURLs, "nats://"+n+":4222")
		}
		if got := strings.Split(f["nats"], ","); !sameSet(got, natsURLs) {
			c.failf("%s: --nats=%s, want all of %v", s.Name, f["nats"], natsURLs)
		}
		if f["gossip-bind"] != "0.0.0.0:7946" {
			c.failf("%s: --gossip-bind=%q, want 0.0.0.0:7946", s.Name, f["gossip-bind"])
		}
		var joinWant []string
		for _, n := range nodeNames {
			if n != s.Name {
				joinWant = append(joinWant, n+":7946")
			}
		}
		if got := strings.Split(f["gossip-join"], ","); !sameSet(got, joinWant) {
			c.failf("%s: --gossip-join=%s, want the other nodes %v", s.Name, f["gossip-join"], joinWant)
		}
		id := f["node-id"]
		if id == "" {
			c.failf("%s: no --node-id", s.Name)
		} else if other, dup := ids[id]; dup {
			c.failf("%s: --node-id=%s is also %s's", s.Name, id, other)
		}
		ids[id] = s.Name
		if d := f["demo"]; d != "on" && d != "true" {
			c.failf("%s: --demo=%q: the demo page is off with an external NATS unless --demo=on (the README says: open http://localhost:8080)", s.Name, d)
		}
		if f["origins"] == "" {
			c.failf("%s: no --origins", s.Name)
		} else if !strings.Contains(f["origins"], "http://localhost:8080") {
			c.failf("%s: --origins=%s does not allow the load balancer's http://localhost:8080", s.Name, f["origins"])
		}
		if key := s.Environment["ROOMCAST_API_KEY"]; key == nil || *key == "" {
			c.failf("%s: ROOMCAST_API_KEY (--api-key) is not set", s.Name)
		}
		// Gossip key: set, in a form --gossip-key takes, the same on every
		// node (else they gossip apart), never on the command line.
		if key := s.Environment["ROOMCAST_GOSSIP_KEY"]; key == nil || *key == "" {
			c.failf("%s: ROOMCAST_GOSSIP_KEY (--gossip-key) is not set: gossip would be open to anything on the network", s.Name)
		} else {
			if err := nodeflags.CheckGossipKey(*key); err != nil {
				c.failf("%s: ROOMCAST_GOSSIP_KEY: %v", s.Name, err)
			}
			if gossipKey == "" {
				gossipKey = *key
			} else if *key != gossipKey {
				c.failf("%s: ROOMCAST_GOSSIP_KEY differs from the other nodes': they would not hear each other", s.Name)
			}
		}
		for _, secret := range []string{"api-key", "gossip-key"} {
			if _, ok := f[secret]; ok {
				c.failf("%s: --%s on the command line shows in ps and docker inspect: pass it as env ROOMCAST_%s", s.Name, secret, strings.ToUpper(strings.ReplaceAll(secret, "-", "_")))
			}
		}
		if r := s.Environment["ROOMCAST_KEYS_REPLICAS"]; r == nil || *r != fmt.Sprint(len(nats)) {
			c.failf("%s: ROOMCAST_KEYS_REPLICAS should be %d (one replica of rc-keys per NATS server)", s.Name, len(nats))
		}
		if cfg := f["config"]; cfg != "" {
			mounted := false
			for _, v := range s.Volumes {
				if v.Target == cfg && v.Type == types.VolumeTypeBind {
					mounted = true
					if st, err := os.Stat(v.Source); err != nil || st.IsDir() {
						c.failf("%s: config %s is mounted from %s, which is not a file", s.Name, cfg, v.Source)
					}
				}
			}
			if !mounted {
				c.failf("%s: --config=%s is not bind-mounted", s.Name, cfg)
			}
		}
		if s.Build == nil {
			c.failf("%s: no build section (the image is built from the Dockerfile)", s.Name)
		} else if _, err := os.Stat(filepath.Join(s.Build.Context, s.Build.Dockerfile)); err != nil {
			c.failf("%s: %v", s.Name, err)
		}
		for _, n := range natsNames {
			if d, ok := s.DependsOn[n]; !ok || d.Condition != types.ServiceConditionHealthy {
				c.failf("%s: should depend on %s being healthy", s.Name, n)
			}
		}
	}

	// Load balancer: nginx with our config, upstreams = the nodes.
	lb, ok := p.Services["lb"]
	if !ok {
		c.failf("no lb service")
	} else {
		var conf string
		for _, v := range lb.Volumes {
			if v.Target == "/etc/nginx/nginx.conf" {
				conf = v.Source
			}
		}
		if conf == "" {
			c.failf("lb: /etc/nginx/nginx.conf is not mounted")
		} else if b, err := os.ReadFile(conf); err != nil {
			c.failf("lb: %v", err)
		} else {
			c.checkNginx(string(b), nodeNames)
		}
		published := false
		for _, port := range lb.Ports {
			if port.Target == 8080 && port.Published == "8080" {
				published = true
			}
		}
		if !published {
			c.failf("lb: container port 8080 is not published on host port 8080")
		}
		for _, n := range nodeNames {
			if _, ok := lb.DependsOn[n]; !ok {
				c.failf("lb: should depend on %s (nginx resolves upstream names at start)", n)
			}
		}
		// The nodes believe the balancer's X-Forwarded-For, and only
		// its: it needs a fixed address, and they must name it.
		var lbIP string
		for _, nw := range lb.Networks {
			if nw != nil && nw.Ipv4Address != "" {
				lbIP = nw.Ipv4Address
			}
		}
		if lbIP == "" {
			c.failf("lb: no fixed ipv4_address for the nodes' --trusted-proxies")
		}
		for _, s := range nodes {
			if tp := s.Environment["ROOMCAST_TRUSTED_PROXIES"]; tp == nil || *tp != lbIP {
				c.failf("%s: ROOMCAST_TRUSTED_PROXIES should be the lb's address %s, so per-IP limits see clients, not the lb", s.Name, lbIP)
			}
		}
	}

	// The back-end publishing to a room.
	t, ok := p.Services["ticker"]
	if !ok {
		c.failf("no ticker service")
	} else {
		cmd := strings.Join(t.Command, " ")
		for _, want := range []string{"nats pub", "rc.room.lobby", "Rc-Event:tick"} {
			if !strings.Contains(cmd, want) {
				c.failf("ticker: command does not contain %q", want)
			}
		}
		if u := t.Environment["NATS_URL"]; u == nil || *u == "" {
			c.failf("ticker: NATS_URL is not set")
		}
	}
}

var upstreamServer = regexp.MustCompile(`(?m)^\s*server\s+([A-Za-z0-9._-]+):([0-9]+)`)

func (c *checker) checkNginx(conf string, nodes []string) {
	var got []string
	for _, m := range upstreamServer.FindAllStringSubmatch(conf, -1) {
		if m[2] != "8080" {
			c.failf("nginx.conf: upstream server %s:%s is not on the nodes' port 8080", m[1], m[2])
		}
		got = append(got, m[1])
	}
	if !sameSet(got, nodes) {
		c.failf("nginx.conf: upstream servers %v, want the roomcast services %v", got, nodes)
	}
	for _, want := range []string{
		"proxy_http_version 1.1", "proxy_set_header Upgrade $http_upgrade",
		"proxy_set_header Connection $connection_upgrade", "proxy_read_timeout", "listen 8080",
	} {
		if !strings.Contains(conf, want) {
			c.failf("nginx.conf: missing %q (needed to proxy WebSockets)", want)
		}
	}
}

func sameSet(a, b []string) bool {
	x := slices.Clone(a)
	y := slices.Clone(b)
	for i := range x {
		x[i] = strings.TrimSpace(x[i])
	}
	sort.Strings(x)
	sort.Strings(y)
	return slices.Equal(x, y)
}
