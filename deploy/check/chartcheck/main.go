// Command chartcheck checks what kubeconform cannot see in the output of
// `helm template` for the roomcast chart: that the objects agree with each
// other and with the node's command line and drain contract.
//
// Usage: chartcheck -f rendered.yaml [-nats URL] [-kinds K1,K2] [-secret NAME] [-no-api-key]
// [-gossip-secret NAME] [-no-gossip-key] [-node-config cmd/node/config.go]
//
//   - Deployment: probes on /readyz and /healthz; only known flags; --node-id
//     from the pod name (downward API); --gossip-join names the headless
//     Service, which publishes not-ready pods and carries the gossip port over
//     TCP and UDP; terminationGracePeriodSeconds covers the preStop sleep and
//     --drain-grace, and --drain-grace exceeds --drain-window; --config is
//     mounted from a ConfigMap of this release whose routes are well formed;
//     ROOMCAST_API_KEY and ROOMCAST_GOSSIP_KEY come from Secrets that are
//     rendered (holding the key; a gossip key in a form --gossip-key takes)
//     or named by -secret and -gossip-secret, never from the command line;
//     every rendered Secret is used.
//   - Services, PodDisruptionBudget, HPA, Ingress, ServiceMonitor point at the
//     Deployment's pods / Service / ports.
package main

import (
	"bytes"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"sort"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/roomcast/roomcast/deploy/check/internal/nodeflags"
)

// knownFlags are the roomcast-node flags (read from cmd/node/config.go).
var knownFlags []string

type obj = map[string]any

type checker struct {
	errs []string
	objs map[string][]obj // by kind
}

func (c *checker) failf(format string, args ...any) {
	c.errs = append(c.errs, fmt.Sprintf(format, args...))
}

func main() {
	file := flag.String("f", "", "rendered manifests (helm template output)")
	natsURL := flag.String("nats", "", "expected --nats value")
	kinds := flag.String("kinds", "", "expected set of kinds, comma separated")
	secret := flag.String("secret", "", "name of a Secret made outside the chart that holds the API key")
	noAPIKey := flag.Bool("no-api-key", false, "expect no API key at all")
	gossipSecret := flag.String("gossip-secret", "", "name of a Secret made outside the chart that holds the gossip key")
	noGossipKey := flag.Bool("no-gossip-key", false, "expect no gossip key at all (plaintext gossip)")
	nodeConfig := flag.String("node-config", "cmd/node/config.go", "the node's option table (flag names)")
	flag.Parse()
	var err error
	if knownFlags, err = nodeflags.Load(*nodeConfig); err != nil {
		fatal(err)
	}
	if *file == "" {
		flag.Usage()
		os.Exit(2)
	}
	raw, err := os.ReadFile(*file)
	if err != nil {
		fatal(err)
	}
	c := &checker{objs: map[string][]obj{}}
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	for {
		var o obj
		err := dec.Decode(&o)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			fatal(fmt.Errorf("%s: %w", *file, err))
		}
		if o == nil {
			continue
		}
		k, _ := o["kind"].(string)
		c.objs[k] = append(c.objs[k], o)
	}
	c.check(*natsURL, []keyEnv{
		{env: "ROOMCAST_API_KEY", flag: "api-key", what: "API key", ext: *secret, none: *noAPIKey},
		{env: "ROOMCAST_GOSSIP_KEY", flag: "gossip-key", what: "gossip key", ext: *gossipSecret, none: *noGossipKey, valid: nodeflags.CheckGossipKey},
	})
	if *kinds != "" {
		var got []string
		for k := range c.objs {
			got = append(got, k)
		}
		want := strings.Split(*kinds, ",")
		sort.Strings(got)
		sort.Strings(want)
		if !slices.Equal(got, want) {
			c.failf("kinds rendered %v, want %v", got, want)
		}
	}
	if len(c.errs) > 0 {
		for _, e := range c.errs {
			fmt.Fprintf(os.Stderr, "chartcheck: %s: %s\n", *file, e)
		}
		os.Exit(1)
	}
	n := 0
	for _, l := range c.objs {
		n += len(l)
	}
	fmt.Printf("chartcheck: %s: ok (%d objects)\n", *file, n)
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "chartcheck:", err)
	os.Exit(1)
}

// get walks nested maps and lists: get(o, "spec", "template", "spec").
func get(v any, path ...any) any {
	for _, p := range path {
		switch k := p.(type) {
		case string:
			m, ok := v.(obj)
			if !ok {
				return nil
			}
			v = m[k]
		case int:
			l, ok := v.([]any)
			if !ok || k >= len(l) {
				return nil
			}
			v = l[k]
		}
	}
	return v
}

func str(v any, path ...any) string {
	s, _ := get(v, path...).(string)
	return s
}

func list(v any, path ...any) []any {
	l, _ := get(v, path...).([]any)
	return l
}

func num(v any, path ...any) (int, bool) {
	switch n := get(v, path...).(type) {
	case int:
		return n, true
	case float64:
		return int(n), true
	}
	return 0, false
}

func name(o obj) string { return str(o, "metadata", "name") }

func (c *checker) one(kind string) obj {
	l := c.objs[kind]
	if len(l) != 1 {
		c.failf("want exactly one %s, have %d", kind, len(l))
		return nil
	}
	return l[0]
}

func (c *checker) byName(kind, n string) obj {
	for _, o := range c.objs[kind] {
		if name(o) == n {
			return o
		}
	}
	return nil
}

// selects reports whether the selector (matchLabels or a plain map) picks labels.
func selects(sel any, labels any) bool {
	s, ok := sel.(obj)
	if !ok || len(s) == 0 {
		return false
	}
	l, _ := labels.(obj)
	for k, v := range s {
		if fmt.Sprint(l[k]) != fmt.Sprint(v) {
			return false
		}
	}
	return true
}

// keyEnv is a secret the node takes from the env, from a Secret.
type keyEnv struct {
	env, flag, what string
	ext             string // a Secret made outside the chart holds it
	none            bool   // expect it not set at all
	valid           func(string) error
}

func (c *checker) check(wantNATS string, keys []keyEnv) {
	dep := c.one("Deployment")
	if dep == nil {
		return
	}
	podLabels := get(dep, "spec", "template", "metadata", "labels")
	if !selects(get(dep, "spec", "selector", "matchLabels"), podLabels) {
		c.failf("Deployment: selector does not match its pod labels")
	}
	pod := get(dep, "spec", "template", "spec")
	containers := list(pod, "containers")
	if len(containers) != 1 {
		c.failf("Deployment: want one container, have %d", len(containers))
		return
	}
	ctr := containers[0]

	// Flags.
	flags := map[string]string{}
	for _, a := range list(ctr, "args") {
		s, _ := a.(string)
		k, v, ok := strings.Cut(strings.TrimPrefix(s, "--"), "=")
		if !strings.HasPrefix(s, "--") || !ok {
			c.failf("Deployment: argument %q is not --flag=value", s)
			continue
		}
		if !slices.Contains(knownFlags, k) {
			c.failf("Deployment: unknown roomcast-node flag --%s", k)
		}
		if _, dup := flags[k]; dup {
			c.failf("Deployment: --%s given twice", k)
		}
		flags[k] = v
	}
	for _, k := range []string{"nats", "node-id", "gossip-bind", "gossip-join", "drain-window", "drain-grace", "config", "keys-replicas"} {
		if flags[k] == "" {
			c.failf("Deployment: --%s is missing", k)
		}
	}
	if wantNATS != "" && flags["nats"] != wantNATS {
		c.failf("Deployment: --nats=%s, want %s", flags["nats"], wantNATS)
	}
	env := map[string]any{}
	for _, e := range list(ctr, "env") {
		env[str(e, "name")] = e
	}
	if flags["node-id"] != "$(POD_NAME)" || str(env["POD_NAME"], "valueFrom", "fieldRef", "fieldPath") != "metadata.name" {
		c.failf("Deployment: --node-id should be $(POD_NAME) with POD_NAME from the downward API (metadata.name)")
	}

	// Ports and probes.
	ports := map[string]obj{}
	for _, p := range list(ctr, "ports") {
		if m, ok := p.(obj); ok {
			ports[str(m, "name")] = m
		}
	}
	if n, _ := num(ports["http"], "containerPort"); n != 8080 {
		c.failf("Deployment: container port \"http\" should be 8080 (--listen=:8080)")
	}
	if flags["listen"] != ":8080" {
		c.failf("Deployment: --listen=%s, want :8080", flags["listen"])
	}
	for probe, path := range map[string]string{"readinessProbe": "/readyz", "livenessProbe": "/healthz"} {
		if got := str(ctr, probe, "httpGet", "path"); got != path {
			c.failf("Deployment: %s path %q, want %s", probe, got, path)
		}
		port := fmt.Sprint(get(ctr, probe, "httpGet", "port"))
		if port != "http" && port != "8080" {
			c.failf("Deployment: %s port %s is not the http port", probe, port)
		}
	}

	// Gossip: headless Service by DNS.
	_, gossipPortStr, _ := strings.Cut(flags["gossip-bind"], ":")
	host, joinPort, _ := strings.Cut(flags["gossip-join"], ":")
	if joinPort != gossipPortStr {
		c.failf("Deployment: --gossip-join port %s differs from --gossip-bind port %s", joinPort, gossipPortStr)
	}
	svcName, _, _ := strings.Cut(host, ".")
	ns := str(dep, "metadata", "namespace")
	if !strings.HasPrefix(host, svcName+"."+ns+".svc.") {
		c.failf("Deployment: --gossip-join host %s is not <service>.%s.svc.<domain>", host, ns)
	}
	gs := c.byName("Service", svcName)
	if gs == nil {
		c.failf("Deployment: --gossip-join names Service %s, which is not rendered", svcName)
	} else {
		if str(gs, "spec", "clusterIP") != "None" {
			c.failf("Service %s: gossip Service should be headless (clusterIP: None)", svcName)
		}
		if b, _ := get(gs, "spec", "publishNotReadyAddresses").(bool); !b {
			c.failf("Service %s: should publish not-ready addresses (peers must find starting nodes)", svcName)
		}
		protos := map[string]bool{}
		for _, p := range list(gs, "spec", "ports") {
			if fmt.Sprint(get(p, "port")) == gossipPortStr {
				protos[str(p, "protocol")] = true
				tp := fmt.Sprint(get(p, "targetPort"))
				if cp, ok := ports[tp]; !ok || fmt.Sprint(get(cp, "containerPort")) != gossipPortStr || str(cp, "protocol") != str(p, "protocol") {
					c.failf("Service %s: targetPort %s is not a container port %s/%s", svcName, tp, gossipPortStr, str(p, "protocol"))
				}
			}
		}
		if !protos["TCP"] || !protos["UDP"] {
			c.failf("Service %s: gossip port %s should be open over TCP and UDP", svcName, gossipPortStr)
		}
	}

	// Drain: preStop + grace fit in terminationGracePeriodSeconds.
	window, err1 := time.ParseDuration(flags["drain-window"])
	grace, err2 := time.ParseDuration(flags["drain-grace"])
	if err1 != nil || err2 != nil {
		c.failf("Deployment: --drain-window/--drain-grace are not durations: %v %v", err1, err2)
	} else {
		if grace <= window {
			c.failf("Deployment: --drain-grace %s should exceed --drain-window %s", grace, window)
		}
		sleep, _ := num(ctr, "lifecycle", "preStop", "sleep", "seconds")
		tgps, ok := num(pod, "terminationGracePeriodSeconds")
		need := time.Duration(sleep)*time.Second + grace
		if !ok || time.Duration(tgps)*time.Second <= need {
			c.failf("Deployment: terminationGracePeriodSeconds %d should exceed preStop sleep %ds + drain grace %s", tgps, sleep, grace)
		}
	}

	// Config file from the ConfigMap.
	cfgPath := flags["config"]
	mounted := false
	for _, m := range list(ctr, "volumeMounts") {
		mp := str(m, "mountPath")
		if !strings.HasPrefix(cfgPath, strings.TrimSuffix(mp, "/")+"/") {
			continue
		}
		for _, v := range list(pod, "volumes") {
			if str(v, "name") != str(m, "name") {
				continue
			}
			cm := c.byName("ConfigMap", str(v, "configMap", "name"))
			if cm == nil {
				c.failf("Deployment: --config %s is not mounted from a rendered ConfigMap", cfgPath)
				continue
			}
			mounted = true
			key := strings.TrimPrefix(cfgPath, strings.TrimSuffix(mp, "/")+"/")
			c.checkConfig(str(cm, "data", key), flags)
		}
	}
	if !mounted {
		c.failf("Deployment: --config %s is not on a ConfigMap volume", cfgPath)
	}

	// Keys: from Secrets, never on the command line.
	used := map[string]bool{}
	for _, k := range keys {
		c.checkKeyEnv(k, env[k.env], flags, used)
	}
	for _, s := range c.objs["Secret"] {
		if !used[name(s)] {
			c.failf("Secret %s is rendered but no key of the Deployment comes from it", name(s))
		}
	}

	// Client Service, PDB, HPA, Ingress, ServiceMonitor.
	var client obj
	for _, s := range c.objs["Service"] {
		if !selects(get(s, "spec", "selector"), podLabels) {
			c.failf("Service %s: selector does not match the pods", name(s))
		}
		if str(s, "spec", "clusterIP") != "None" {
			client = s
		}
	}
	if client == nil {
		c.failf("no client Service")
	} else {
		for _, p := range list(client, "spec", "ports") {
			if tp := fmt.Sprint(get(p, "targetPort")); tp != "http" && tp != "8080" {
				c.failf("Service %s: targetPort %s is not the http port", name(client), tp)
			}
		}
	}
	for _, p := range c.objs["PodDisruptionBudget"] {
		if !selects(get(p, "spec", "selector", "matchLabels"), podLabels) {
			c.failf("PodDisruptionBudget %s: selector does not match the pods", name(p))
		}
	}
	if hpas := c.objs["HorizontalPodAutoscaler"]; len(hpas) > 0 {
		h := hpas[0]
		if str(h, "spec", "scaleTargetRef", "kind") != "Deployment" || str(h, "spec", "scaleTargetRef", "name") != name(dep) {
			c.failf("HorizontalPodAutoscaler %s: does not target Deployment %s", name(h), name(dep))
		}
		if get(dep, "spec", "replicas") != nil {
			c.failf("Deployment: replicas is set while an HPA scales it (every upgrade would reset it)")
		}
		for _, m := range list(h, "spec", "metrics") {
			if str(m, "type") == "Resource" && str(m, "resource", "name") == "cpu" && str(ctr, "resources", "requests", "cpu") == "" && get(ctr, "resources", "requests", "cpu") == nil {
				c.failf("HorizontalPodAutoscaler: CPU utilization needs resources.requests.cpu")
			}
			if str(m, "type") == "Pods" && str(m, "pods", "metric", "name") != "roomcast_connections" {
				c.failf("HorizontalPodAutoscaler: pods metric %q, want roomcast_connections", str(m, "pods", "metric", "name"))
			}
		}
	} else if get(dep, "spec", "replicas") == nil {
		c.failf("Deployment: no replicas and no HPA")
	}
	for _, in := range c.objs["Ingress"] {
		for _, r := range list(in, "spec", "rules") {
			for _, p := range list(r, "http", "paths") {
				b := get(p, "backend", "service")
				if client == nil || str(b, "name") != name(client) {
					c.failf("Ingress %s: backend %s is not the client Service", name(in), str(b, "name"))
				}
				if pn := str(b, "port", "name"); pn != "" && pn != str(get(client, "spec", "ports", 0), "name") {
					c.failf("Ingress %s: backend port %s is not a port of the client Service", name(in), pn)
				}
			}
		}
	}
	for _, sm := range c.objs["ServiceMonitor"] {
		if client == nil || !selects(get(sm, "spec", "selector", "matchLabels"), get(client, "metadata", "labels")) {
			c.failf("ServiceMonitor %s: does not select the client Service", name(sm))
		}
		for _, gs := range c.objs["Service"] {
			if str(gs, "spec", "clusterIP") == "None" && selects(get(sm, "spec", "selector", "matchLabels"), get(gs, "metadata", "labels")) {
				c.failf("ServiceMonitor %s: also selects the headless Service %s (pods would be scraped twice)", name(sm), name(gs))
			}
		}
		for _, e := range list(sm, "spec", "endpoints") {
			if str(e, "path") != "/metrics" || str(e, "port") != "http" {
				c.failf("ServiceMonitor %s: endpoint should be port http, path /metrics", name(sm))
			}
		}
	}
}

// checkKeyEnv checks that the env variable k.env of the container comes
// from a Secret (rendered, or k.ext) and that the rendered Secret holds a
// valid key; rendered Secrets it uses are added to used.
func (c *checker) checkKeyEnv(k keyEnv, e any, flags map[string]string, used map[string]bool) {
	if flags[k.flag] != "" {
		c.failf("Deployment: the %s must not be a command-line argument (--%s shows in ps): pass %s from a Secret", k.what, k.flag, k.env)
	}
	ref := get(e, "valueFrom", "secretKeyRef")
	switch {
	case k.none:
		if e != nil {
			c.failf("Deployment: %s is set, no %s expected", k.env, k.what)
		}
	case ref == nil:
		c.failf("Deployment: %s (the %s) should come from a Secret (secretKeyRef)", k.env, k.what)
	case k.ext != "":
		if str(ref, "name") != k.ext {
			c.failf("Deployment: %s Secret %s, want %s", k.what, str(ref, "name"), k.ext)
		}
		if c.byName("Secret", k.ext) != nil {
			c.failf("the chart renders Secret %s, which is made outside it", k.ext)
		}
	default:
		s := c.byName("Secret", str(ref, "name"))
		if s == nil {
			c.failf("Deployment: %s Secret %s is not rendered", k.what, str(ref, "name"))
			return
		}
		used[name(s)] = true
		data := str(s, "data", str(ref, "key"))
		if data == "" {
			c.failf("Secret %s: no key %s", name(s), str(ref, "key"))
			return
		}
		v, err := base64.StdEncoding.DecodeString(data)
		if err != nil {
			c.failf("Secret %s: %s is not base64 data: %v", name(s), str(ref, "key"), err)
			return
		}
		if k.valid != nil {
			if err := k.valid(string(v)); err != nil {
				c.failf("Secret %s: %s: %v", name(s), str(ref, "key"), err)
			}
		}
	}
}

// checkConfig parses the node's config file and checks its routes.
func (c *checker) checkConfig(text string, flags map[string]string) {
	var cfg map[string]any
	if err := yaml.Unmarshal([]byte(text), &cfg); err != nil {
		c.failf("ConfigMap: config file is not YAML: %v", err)
		return
	}
	for k := range cfg {
		if k != "routes" && !slices.Contains(knownFlags, k) {
			c.failf("ConfigMap: unknown config key %q", k)
		}
		if _, both := flags[k]; both {
			c.failf("ConfigMap: %q is also a command-line flag, which wins: drop one", k)
		}
		if k == "api-key" || k == "gossip-key" {
			c.failf("ConfigMap: %q is a secret, and ConfigMaps are not: set it with the chart's key values (a Secret)", k)
		}
	}
	routes, ok := cfg["routes"].([]any)
	if cfg["routes"] != nil && !ok {
		c.failf("ConfigMap: routes is not a list")
	}
	paths := map[string]bool{}
	for i, r := range routes {
		m, ok := r.(map[string]any)
		if !ok {
			c.failf("ConfigMap: route %d is not a mapping", i)
			continue
		}
		p, _ := m["path"].(string)
		if !strings.HasPrefix(p, "/") {
			c.failf("ConfigMap: route %d: path %q does not start with /", i, p)
		}
		if paths[p] {
			c.failf("ConfigMap: route path %s appears twice", p)
		}
		paths[p] = true
		if a, _ := m["auth"].(string); a != "public" && a != "key" && a != "hook" {
			c.failf("ConfigMap: route %s: auth %q is not public, key or hook", p, a)
		}
		for k := range m {
			if k != "path" && k != "auth" && k != "rooms" && k != "allow" {
				c.failf("ConfigMap: route %s: unknown key %q", p, k)
			}
		}
	}
}
