// Package backend is the Go side of roomcast for application back-ends:
// per-request sockets, RPC methods, the auth hook, control and database-sync
// events, all over NATS, with nothing but a *nats.Conn. A back-end built on
// it runs anywhere that reaches the nodes' NATS; the subjects it uses are
// the public API of the README's subject table, so the same back-end can be
// written in any language (examples/node-backend does it in Node.js).
//
// Per-request sockets, as sveltekit-websockets' use(event, socket => ...):
//
//	b, _ := backend.New(nc, backend.Options{PublicURL: "wss://rt.example.com"})
//	url, err := b.Use(ctx, backend.Claims{User: "ada", Rooms: []string{"chat.lobby"}}, func(s *backend.Socket) {
//		s.Send("Connected!")
//		s.OnMessage(func(m backend.Message) { log.Printf("%s says %s", s.User(), m.Data) })
//		s.OnClose(func(code int, reason string) { log.Printf("closed %d", code) })
//	})
//	// hand url to the browser: new WebSocket(url)
//
// Use mints a one-time key for a pre-assigned session id (rc.keys.mint),
// subscribes to what the browser sends (rc.send.<session>) and follows the
// session's lifecycle events (rc.events.connect|close|error, one shared
// subscription per Backend). What the handler sends before the browser
// connects is queued. A key that is never redeemed closes the socket with
// CloseKeyExpired (4001) once it has expired; everything is released on
// close.
//
// RPC methods, answered in a queue group so back-end replicas share them:
//
//	backend.Serve(nc, "chat.history", func(ctx context.Context, r *backend.Request) (any, error) {
//		return store.Last(50), nil
//	})
//
// Where to start: backend.go (Backend, Use, publishing and control),
// socket.go (Socket), serve.go (Serve, ServeAuth), entity.go
// (PublishEntity).
package backend
