// Package demo serves the roomcast demo page: a small single page built from
// the @roomcast/client package in clients/js and embedded in the binary, so
// that `go run ./cmd/node` serves it at "/" without npm.
//
// The page needs from the node: POST /_/demo/key taking {"user": name} and
// answering {"url": "/_/connect/<key>"} (a one-time key, fetched again for
// every reconnect), or, when that answers 404, the public continuous route
// /_/demo/ws. It joins a room with meta {"name"}, publishes "chat" events
// and shows the presence list and the node id from welcome. With ?shared=1
// the tabs of a browser share one socket through worker.js (a SharedWorker).
//
// The files in dist are built output, committed on purpose; rebuild them
// after changing clients/js with `go generate ./pkg/demo` (needs Node ≥ 20.19
// and npm).
package demo

//go:generate sh -c "cd ../../clients/js && npm ci --no-audit --no-fund && npm run build:demo"

import (
	"embed"
	"io/fs"
	"net/http"
)

//go:embed dist
var files embed.FS

// Handler serves the demo page ("/" is index.html) and its assets
// (app.js, worker.js); unknown paths get 404 and methods other than GET and
// HEAD get 405. Responses carry Cache-Control: no-cache so that the page of a
// rebuilt binary is picked up at once: embedded files have no modification
// time to revalidate against, and they are small.
func Handler() http.Handler {
	sub, err := fs.Sub(files, "dist")
	if err != nil {
		// Cannot happen: "dist" is embedded at build time.
		panic("demo: " + err.Error())
	}
	fileServer := http.FileServer(http.FS(sub))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed: the demo page only answers GET", http.StatusMethodNotAllowed)
			return
		}
		h := w.Header()
		h.Set("Cache-Control", "no-cache")
		h.Set("X-Content-Type-Options", "nosniff")
		fileServer.ServeHTTP(w, r)
	})
}
