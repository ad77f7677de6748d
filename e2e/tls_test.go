package e2e

import (
	"crypto/tls"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/roomcast/roomcast/e2e/harness"
	"github.com/roomcast/roomcast/pkg/certs/certstest"
	"github.com/roomcast/roomcast/pkg/client"
)

// TestTLSNode starts a node with a self-signed certificate: https serves the
// API, and a wss:// session joins a room and receives a broadcast.
func TestTLSNode(t *testing.T) {
	t.Parallel()
	cert, key := certstest.WriteSelfSigned(t, t.TempDir(), 1)
	node := harness.Launch(t, harness.NodeConfig{
		ID:   "tls",
		Args: []string{"--tls-cert", cert, "--tls-key", key},
	})
	insecure := &tls.Config{InsecureSkipVerify: true}
	hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: insecure}}
	deadline := time.Now().Add(wait)
	for {
		resp, err := hc.Get("https://" + node.Addr + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("https /readyz never 200: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}

	// Mint over https, connect over wss.
	req, _ := http.NewRequest("POST", "https://"+node.Addr+"/_/keys", strings.NewReader(`{"user":"tls-user","rooms":["secure"]}`))
	req.Header.Set("Authorization", "Bearer "+node.APIKey)
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var k harness.Key
	err = json.NewDecoder(resp.Body).Decode(&k)
	resp.Body.Close()
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("mint over https: %d %v", resp.StatusCode, err)
	}
	ctx := harness.Ctx(t, wait)
	c, err := client.Dial(ctx, "wss://"+node.Addr+k.URL, &client.Options{TLS: insecure})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if c.Welcome().User != "tls-user" {
		t.Fatalf("welcome %+v", c.Welcome())
	}
	if err := c.Publish(ctx, "secure", "hello", map[string]string{"over": "wss"}); err != nil {
		t.Fatal(err)
	}
	harness.WaitEvent(t, c, wait, "own broadcast over wss", harness.IsEvent("secure", "hello"))
}
