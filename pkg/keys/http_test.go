package keys

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/roomcast/roomcast/pkg/bus/bustest"
)

func TestHandler(t *testing.T) {
	srv := bustest.RunServer(t)
	st := newStore(t, srv, StoreOptions{})
	const apiKey = "s3cret-api-key"
	ts := httptest.NewServer(Handler(st, apiKey, time.Minute, time.Hour))
	defer ts.Close()

	type resp struct {
		status int
		header http.Header
		body   []byte
	}
	do := func(method, auth, body string) resp {
		t.Helper()
		req, err := http.NewRequest(method, ts.URL+"/_/keys", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return resp{res.StatusCode, res.Header, b}
	}
	errorOf := func(r resp) ErrorDetail {
		t.Helper()
		var e ErrorBody
		if err := json.Unmarshal(r.body, &e); err != nil || e.Error.Code == "" {
			t.Fatalf("body %q is not an error JSON: %v", r.body, err)
		}
		return e.Error
	}

	failures := []struct {
		name, method, auth, body string
		status                   int
		code, msg                string
	}{
		{"no key", "POST", "", `{}`, 401, "unauthorized", "missing API key"},
		{"not bearer", "POST", "Basic " + apiKey, `{}`, 401, "unauthorized", "missing API key"},
		{"wrong key", "POST", "Bearer nope", `{}`, 401, "unauthorized", "wrong API key"},
		{"key prefix", "POST", "Bearer " + apiKey[:5], `{}`, 401, "unauthorized", "wrong API key"},
		{"GET", "GET", "Bearer " + apiKey, ``, 405, "method_not_allowed", "POST"},
		{"bad JSON", "POST", "Bearer " + apiKey, `{"user":`, 400, "bad_request", "not valid JSON"},
		{"bad room", "POST", "Bearer " + apiKey, `{"rooms":["a b"]}`, 400, "bad_request", `room "a b" is invalid`},
		{"ttl too long", "POST", "bearer " + apiKey, `{"ttl":"3h"}`, 400, "bad_request", "limit is 1h0m0s"},
		{"too large", "POST", "Bearer " + apiKey, `{"meta":"` + strings.Repeat("x", MaxRequestBody) + `"}`, 413, "too_large", "exceeds"},
	}
	for _, tt := range failures {
		t.Run(tt.name, func(t *testing.T) {
			r := do(tt.method, tt.auth, tt.body)
			if r.status != tt.status {
				t.Fatalf("status %d, want %d (body %s)", r.status, tt.status, r.body)
			}
			if ct := r.header.Get("Content-Type"); ct != "application/json" {
				t.Fatalf("Content-Type %q", ct)
			}
			e := errorOf(r)
			if e.Code != tt.code || !strings.Contains(e.Message, tt.msg) {
				t.Fatalf("error %+v, want code %s and a message about %q", e, tt.code, tt.msg)
			}
			if tt.status == 405 && r.header.Get("Allow") != "POST" {
				t.Fatalf("Allow = %q", r.header.Get("Allow"))
			}
			if tt.status == 401 && r.header.Get("WWW-Authenticate") == "" {
				t.Fatal("401 without WWW-Authenticate")
			}
		})
	}

	t.Run("ok", func(t *testing.T) {
		r := do("POST", "Bearer "+apiKey, `{"user":"u1","rooms":["lobby"],"ttl":"90s"}`)
		if r.status != 200 {
			t.Fatalf("status %d: %s", r.status, r.body)
		}
		if ct, cc := r.header.Get("Content-Type"), r.header.Get("Cache-Control"); ct != "application/json" || cc != "no-store" {
			t.Fatalf("Content-Type %q, Cache-Control %q", ct, cc)
		}
		var m Minted
		if err := json.Unmarshal(r.body, &m); err != nil || m.Key == "" || m.URL != "/_/connect/"+m.Key || m.Session == "" {
			t.Fatalf("body %s: %v", r.body, err)
		}
		if d := time.Until(m.ExpiresAt); d < 80*time.Second || d > 91*time.Second {
			t.Fatalf("expires in %s, want ~90s", d)
		}
		c, err := st.Redeem(context.Background(), m.Key)
		if err != nil || c.User != "u1" || c.Session != m.Session {
			t.Fatalf("Redeem = %+v, %v", c, err)
		}
	})

	t.Run("empty body", func(t *testing.T) {
		if r := do("POST", "Bearer "+apiKey, ``); r.status != 200 {
			t.Fatalf("status %d: %s", r.status, r.body)
		}
	})

	t.Run("no api key configured", func(t *testing.T) {
		off := httptest.NewServer(Handler(st, "", 0, 0))
		defer off.Close()
		for _, auth := range []string{"", "Bearer ", "Bearer x"} {
			req, _ := http.NewRequest("POST", off.URL, strings.NewReader(`{}`))
			if auth != "" {
				req.Header.Set("Authorization", auth)
			}
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			res.Body.Close()
			if res.StatusCode != 403 {
				t.Fatalf("auth %q: status %d, want 403", auth, res.StatusCode)
			}
		}
	})

	t.Run("NATS down", func(t *testing.T) {
		srv.Shutdown()
		srv.WaitForShutdown()
		r := do("POST", "Bearer "+apiKey, `{}`)
		if r.status != 503 || errorOf(r).Code != "unavailable" || r.header.Get("Retry-After") == "" {
			t.Fatalf("status %d, body %s; want 503 unavailable with Retry-After", r.status, r.body)
		}
	})
}
