// Package frame owns the WebSocket frame layer of roomcast, server side: RFC 6455
// framing and RFC 7692 permessage-deflate with no context takeover.
//
// It is pure: no sockets, no goroutines, no timers. pkg/loop reads bytes from a
// socket and hands them to a [Parser]; the Parser calls a [Handler] for each complete
// message and control frame, or returns a [*CloseError] naming the close code the
// connection must be failed with. Outgoing frames are built with [AppendFrame],
// [AppendClose], or, for a broadcast written to many connections, once per node with
// [NewPrepared].
//
// Where to start reading:
//
//   - parser.go: [Parser.Feed], the incremental state machine. Every rule of RFC 6455
//     §5 is enforced there, at whatever byte boundary the input is split.
//   - utf8.go: the incremental UTF-8 validator that fails a text message as soon as
//     its bytes are known to be invalid, even mid-frame.
//   - inflate.go, prepared.go: compression; pooled flate readers and writers so that
//     an idle connection holds no compression state.
//   - negotiate.go: the permessage-deflate handshake answer ([Negotiator]).
//   - frametest: the conformance cases, reusable over real sockets.
//
// Memory: a Parser at rest is 48 bytes and holds no buffer; buffers are taken from
// pools only while a message or a split control frame is in progress, and returned
// as soon as it is delivered.
package frame
