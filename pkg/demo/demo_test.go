package demo

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestHandler(t *testing.T) {
	srv := httptest.NewServer(Handler())
	defer srv.Close()

	tests := []struct {
		method, path string
		status       int
		contentType  string
		contains     string
	}{
		{"GET", "/", http.StatusOK, "text/html", `src="app.js"`},
		{"GET", "/index.html", http.StatusMovedPermanently, "", ""},
		{"GET", "/app.js", http.StatusOK, "javascript", "/_/demo/key"},
		{"GET", "/worker.js", http.StatusOK, "javascript", ""},
		{"HEAD", "/", http.StatusOK, "text/html", ""},
		{"GET", "/nope.js", http.StatusNotFound, "", ""},
		{"POST", "/", http.StatusMethodNotAllowed, "", ""},
	}
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			req, err := http.NewRequest(tt.method, srv.URL+tt.path, nil)
			if err != nil {
				t.Fatal(err)
			}
			res, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer res.Body.Close()
			body, _ := io.ReadAll(res.Body)
			if res.StatusCode != tt.status {
				t.Fatalf("status = %d, want %d", res.StatusCode, tt.status)
			}
			if ct := res.Header.Get("Content-Type"); tt.contentType != "" && !strings.Contains(ct, tt.contentType) {
				t.Errorf("Content-Type = %q, want it to contain %q", ct, tt.contentType)
			}
			if tt.contains != "" && !strings.Contains(string(body), tt.contains) {
				t.Errorf("body does not contain %q", tt.contains)
			}
		})
	}
}

// The committed build must stay small: it is embedded in every binary.
func TestDistIsSmall(t *testing.T) {
	var total int64
	entries, err := files.ReadDir("dist")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		info, err := e.Info()
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasSuffix(e.Name(), ".map") {
			t.Errorf("source map %s is committed; build without source maps", e.Name())
		}
		total += info.Size()
	}
	if total > 200<<10 {
		t.Errorf("dist holds %d bytes, want ≤ 200 KiB", total)
	}
}
