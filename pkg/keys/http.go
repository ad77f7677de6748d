package keys

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// MaxRequestBody is the largest POST /_/keys body: a mint request within
// the claim limits is far smaller.
const MaxRequestBody = 64 << 10

// Handler serves POST /_/keys: it checks the bearer API key, decodes the
// claims with ParseMintRequest (defaultTTL and maxTTL as there), mints with
// s and answers 200 with the Minted JSON. Failures answer an ErrorBody:
// 401 for a missing or wrong API key, 405 for other methods, 413 for a body
// over MaxRequestBody, 400 for bad claims, 503 when NATS is down, and 403
// for everything if apiKey is empty (the node should not mount it then).
//
// The API key is compared in constant time (of the SHA-256 of both sides, so
// not even its length leaks). Responses are never cached: they hold a key.
func Handler(s *Store, apiKey string, defaultTTL, maxTTL time.Duration) http.Handler {
	want := sha256.Sum256([]byte(apiKey))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Cache-Control", "no-store")
		if r.Method != http.MethodPost {
			h.Set("Allow", http.MethodPost)
			writeError(w, http.StatusMethodNotAllowed, "method_not_allowed", fmt.Sprintf("%s is not supported: POST the claims as JSON", r.Method))
			return
		}
		if apiKey == "" {
			writeError(w, http.StatusForbidden, "forbidden", "minting over HTTP is off on this node: start it with --api-key")
			return
		}
		got, ok := bearer(r)
		if !ok {
			h.Set("WWW-Authenticate", `Bearer realm="roomcast"`)
			writeError(w, http.StatusUnauthorized, "unauthorized", "missing API key: send the header \"Authorization: Bearer <api-key>\"")
			return
		}
		gotSum := sha256.Sum256([]byte(got))
		if subtle.ConstantTimeCompare(gotSum[:], want[:]) != 1 {
			h.Set("WWW-Authenticate", `Bearer realm="roomcast", error="invalid_token"`)
			writeError(w, http.StatusUnauthorized, "unauthorized", "wrong API key: use the node's --api-key (ROOMCAST_API_KEY)")
			return
		}

		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxRequestBody))
		if err != nil {
			var tooBig *http.MaxBytesError
			if errors.As(err, &tooBig) {
				writeError(w, http.StatusRequestEntityTooLarge, "too_large", fmt.Sprintf("the request body exceeds %d bytes: meta is limited to %d", MaxRequestBody, MaxMeta))
				return
			}
			writeError(w, http.StatusBadRequest, "bad_request", "the request body could not be read")
			return
		}
		c, ttl, err := ParseMintRequest(body, defaultTTL, maxTTL)
		if err != nil {
			s.count("mint", "invalid")
		} else {
			ctx, cancel := context.WithTimeout(r.Context(), mintTimeout)
			var m Minted
			m, err = s.Mint(ctx, c, ttl)
			cancel()
			if err == nil {
				writeJSON(w, http.StatusOK, m)
				return
			}
		}
		status, code, msg := classify(err)
		if status == http.StatusServiceUnavailable {
			h.Set("Retry-After", "1")
		}
		writeError(w, status, code, msg)
	})
}

// bearer returns the token of an "Authorization: Bearer <token>" header.
func bearer(r *http.Request) (string, bool) {
	const prefix = "bearer "
	v := r.Header.Get("Authorization")
	if len(v) <= len(prefix) || !strings.EqualFold(v[:len(prefix)], prefix) {
		return "", false
	}
	tok := strings.TrimSpace(v[len(prefix):])
	return tok, tok != ""
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, ErrorBody{ErrorDetail{Code: code, Message: msg}})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil { // our own types: cannot happen
		status, b = http.StatusInternalServerError, []byte(`{"error":{"code":"internal","message":"encoding failed"}}`)
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	w.Write(append(b, '\n'))
}
