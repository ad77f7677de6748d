package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"
)

// Env describes where and on what a run happened; every result carries it.
type Env struct {
	Commit    string `json:"commit"`
	GoVersion string `json:"go"`
	CPU       string `json:"cpu"`
	Cores     int    `json:"cores"`
	MemTotal  string `json:"mem_total"`
	Kernel    string `json:"kernel"`
	// LoadAvg is /proc/loadavg's 1-minute figure when the run started: on a
	// shared machine it says how much the other tenants took.
	LoadAvg string `json:"load_avg"`
	Nofile  uint64 `json:"nofile_limit"`
}

func readEnv(root string) Env {
	e := Env{GoVersion: runtime.Version(), Cores: runtime.NumCPU()}
	if out, err := exec.Command("git", "-C", root, "describe", "--always", "--dirty", "--abbrev=12").Output(); err == nil {
		e.Commit = strings.TrimSpace(string(out))
	}
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		s := bufio.NewScanner(f)
		for s.Scan() {
			if k, v, ok := strings.Cut(s.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
				e.CPU = strings.TrimSpace(v)
				break
			}
		}
		f.Close()
	}
	if m := meminfo(); m["MemTotal"] > 0 {
		e.MemTotal = fmtBytes(float64(m["MemTotal"]))
	}
	var u syscall.Utsname
	if syscall.Uname(&u) == nil {
		var b []byte
		for _, c := range u.Release {
			if c == 0 {
				break
			}
			b = append(b, byte(c))
		}
		e.Kernel = string(b)
	}
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		e.LoadAvg = strings.Fields(string(b))[0]
	}
	var r syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &r) == nil {
		e.Nofile = r.Cur
	}
	return e
}

// raiseNofile lifts this process's soft fd limit to the hard one; children
// inherit it, so the node processes get it too.
func raiseNofile() uint64 {
	var r syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &r); err != nil {
		return 0
	}
	if r.Cur < r.Max {
		r.Cur = r.Max
		_ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &r)
	}
	return r.Cur
}

// moduleRoot finds the roomcast checkout from the working directory.
func moduleRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	mod := strings.TrimSpace(string(out))
	if mod == "" || mod == os.DevNull {
		return "", fmt.Errorf("run the bench from inside the roomcast checkout (go run ./bench)")
	}
	b, err := os.ReadFile(mod)
	if err != nil || !bytes.Contains(b, []byte("module github.com/roomcast/roomcast\n")) {
		return "", fmt.Errorf("%s is not the roomcast module", mod)
	}
	return filepath.Dir(mod), nil
}

// bins are the executables a run uses.
type bins struct {
	node, loadclient, baseline, natsserver string
	centrifugo                             string // empty if unavailable
	centrifugoWhy                          string // why it is unavailable
}

// build compiles the node and the bench's helper programs into dir (the
// baseline only if it will run). The Go build cache makes repeated runs take
// a few seconds.
func build(root, dir string, nodeBin string, withBaseline bool) (bins, error) {
	b := bins{
		node:       filepath.Join(dir, "roomcast-node"),
		loadclient: filepath.Join(dir, "loadclient"),
		baseline:   filepath.Join(dir, "baseline"),
		natsserver: filepath.Join(dir, "natsserver"),
	}
	pkgs := [][2]string{{b.loadclient, "./bench/loadclient"}, {b.natsserver, "./bench/natsserver"}}
	if withBaseline {
		pkgs = append(pkgs, [2]string{b.baseline, "./bench/baseline"})
	}
	if nodeBin != "" {
		b.node = nodeBin
	} else {
		pkgs = append(pkgs, [2]string{b.node, "./cmd/node"})
	}
	start := time.Now()
	for _, p := range pkgs {
		cmd := exec.Command("go", "build", "-o", p[0], p[1])
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			return b, fmt.Errorf("go build %s: %v\n%s", p[1], err, out)
		}
	}
	logf("built %d programs in %s", len(pkgs), time.Since(start).Round(100*time.Millisecond))
	return b, nil
}

// centrifugoVersion is the peer the side-by-side runs use.
const centrifugoVersion = "v6.9.1"

// findCentrifugo returns a Centrifugo binary: the -centrifugo flag, else the
// cache ~/.cache/roomcast-bench/centrifugo-<version>, which -build-peers
// fills with `go install` from the module proxy into a temporary GOBIN (never
// into roomcast's go.mod). Building takes several minutes on 2 cores, so it
// is opt-in.
func findCentrifugo(flagPath string, buildIt bool) (path, why string) {
	if flagPath != "" {
		if _, err := os.Stat(flagPath); err != nil {
			return "", fmt.Sprintf("-centrifugo %s: %v", flagPath, err)
		}
		return flagPath, ""
	}
	home, _ := os.UserHomeDir()
	cached := filepath.Join(home, ".cache", "roomcast-bench", "centrifugo-"+centrifugoVersion)
	if _, err := os.Stat(cached); err == nil {
		return cached, ""
	}
	if !buildIt {
		return "", "no Centrifugo binary at " + cached + ": run once with -build-peers (several minutes) or pass -centrifugo PATH"
	}
	tmp, err := os.MkdirTemp("", "bench-centrifugo-")
	if err != nil {
		return "", err.Error()
	}
	defer os.RemoveAll(tmp)
	logf("building Centrifugo %s from the module proxy (minutes)...", centrifugoVersion)
	cmd := exec.Command("go", "install", "github.com/centrifugal/centrifugo/v6@"+centrifugoVersion)
	cmd.Dir = tmp
	cmd.Env = append(os.Environ(), "GOBIN="+tmp, "GOFLAGS=-mod=mod")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Sprintf("go install centrifugo %s failed: %v: %s", centrifugoVersion, err, lastLine(out))
	}
	if err := os.MkdirAll(filepath.Dir(cached), 0o755); err != nil {
		return "", err.Error()
	}
	data, err := os.ReadFile(filepath.Join(tmp, "centrifugo"))
	if err != nil {
		return "", err.Error()
	}
	if err := os.WriteFile(cached, data, 0o755); err != nil {
		return "", err.Error()
	}
	return cached, ""
}

func lastLine(b []byte) string {
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return lines[len(lines)-1]
}

// meminfo reads /proc/meminfo in bytes.
func meminfo() map[string]int64 {
	m := map[string]int64{}
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return m
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		var k string
		var v int64
		if n, _ := fmt.Sscanf(strings.Replace(s.Text(), ":", " ", 1), "%s %d", &k, &v); n == 2 {
			m[k] = v << 10
		}
	}
	return m
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "bench: "+format+"\n", args...)
}
