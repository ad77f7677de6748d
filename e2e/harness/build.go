// Package harness runs real roomcast processes for the e2e tests: it builds
// roomcast-node and roomcast-mint once per test binary, starts a real NATS
// server in the test process, starts node processes with the flags of
// DESIGN.md, waits until they are ready, keeps their logs under t.TempDir
// (printed when a test fails) and stops them with SIGTERM.
//
// Everything waits by polling with generous deadlines, never by sleeping
// a fixed time: the e2e tests run on loaded 2-core machines.
package harness

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// Environment knobs, for running the tests against other builds.
const (
	// EnvBin names a directory holding prebuilt roomcast-node and
	// roomcast-mint (e.g. the repository's bin/ after `make build`);
	// then nothing is built.
	EnvBin = "ROOMCAST_E2E_BIN"
	// EnvRace=1 builds the binaries with -race, so data races inside the
	// node fail the e2e run too (slower: about 5x the CPU).
	EnvRace = "ROOMCAST_E2E_RACE"
)

var (
	buildOnce sync.Once
	buildDir  string // where the binaries are; removed by Main
	ownDir    bool   // buildDir is ours to remove
	buildErr  error
)

// Main runs the tests of an e2e package and removes the binaries it built.
// Call it from TestMain: func TestMain(m *testing.M) { harness.Main(m) }.
func Main(m *testing.M) {
	code := m.Run()
	if ownDir && buildDir != "" {
		os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

// NodeBin returns the path of roomcast-node, building it on first use.
func NodeBin(t testing.TB) string {
	t.Helper()
	return filepath.Join(binaries(t), "roomcast-node")
}

// MintBin returns the path of roomcast-mint, building it on first use.
func MintBin(t testing.TB) string {
	t.Helper()
	return filepath.Join(binaries(t), "roomcast-mint")
}

func binaries(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		if dir := os.Getenv(EnvBin); dir != "" {
			buildDir = dir
			return
		}
		buildDir, buildErr = os.MkdirTemp("", "roomcast-e2e-bin-")
		if buildErr != nil {
			return
		}
		ownDir = true
		buildErr = build(buildDir)
	})
	if buildErr != nil {
		t.Fatalf("harness: build: %v", buildErr)
	}
	return buildDir
}

// build compiles both binaries into dir with one go build invocation, so
// the shared packages compile once.
func build(dir string) error {
	root, err := moduleRoot()
	if err != nil {
		return err
	}
	args := []string{"build", "-o", dir + string(filepath.Separator)}
	if os.Getenv(EnvRace) == "1" {
		args = append(args, "-race")
	}
	args = append(args, "./cmd/node", "./cmd/mint")
	start := time.Now()
	cmd := exec.Command("go", args...)
	cmd.Dir = root
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("go %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	// go build names the outputs after the package directories.
	for from, to := range map[string]string{"node": "roomcast-node", "mint": "roomcast-mint"} {
		if err := os.Rename(filepath.Join(dir, from), filepath.Join(dir, to)); err != nil {
			return err
		}
	}
	fmt.Fprintf(os.Stderr, "harness: built roomcast-node and roomcast-mint in %v\n", time.Since(start).Round(time.Millisecond))
	return nil
}

// moduleRoot finds the directory holding go.mod, upwards from the working
// directory (go test runs in the package directory).
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no go.mod above the working directory")
		}
		dir = parent
	}
}
