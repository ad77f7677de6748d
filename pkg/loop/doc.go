// Package loop owns WebSocket connections after the handshake: an epoll
// event loop watches every socket, a bounded pool of workers reads the ready
// ones and flushes queued frames, and a once-a-second sweep sends pings and
// enforces idle and close timeouts.
//
// An idle connection costs no goroutine and no buffer: only its Conn struct,
// its fd table slot and the kernel's socket. Read buffers belong to workers;
// outgoing frames are shared, immutable *frame.Prepared values queued by
// reference, so a broadcast is encoded once per node.
//
// Where to start reading: Serve (handshake.go) accepts and upgrades, Conn
// (conn.go) holds one connection's state, readJob (read.go) feeds bytes to
// the frame parser, flush (write.go) writes the queue with writev, and sweep
// (sweep.go) runs the timers.
//
// Concurrency: reads of one connection are serialized by its read state
// (never two workers at once), which is also the only place its fd is
// closed, so an fd number is never reused under a running read. Writes are
// serialized by Conn.mu. Handler callbacks for one connection are never
// concurrent with each other.
package loop
