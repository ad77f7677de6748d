// Package room owns sessions, rooms and the client wire protocol of
// DESIGN.md: it decodes and validates client messages, joins, leaves and
// publishes over NATS, fans room messages out to local members, and turns
// presence changes into session:* messages.
//
// It never touches sockets: a session writes to a Conn (pkg/loop's
// connection in the node, a recorder in tests) and is fed complete text
// messages by its caller. It never imports pkg/loop.
//
// Where to start:
//
//   - hub.go: Options, New, Start, Close and Publish.
//   - registry.go: the room lifecycle (one NATS subscription per room with
//     local members, race-free with concurrent joins and leaves), sessions by
//     id and user, and the release of closed sessions.
//   - session.go: Open (auto-join, then welcome), Receive, Closed, rate
//     limits.
//   - handle.go: one function per client message type; rpc answers.
//   - events.go: lifecycle events on rc.events.<kind>, published only while
//     someone listens (BenchmarkEvents).
//   - control.go: what back-ends ask over rc.control.* (kick, close-room,
//     join, leave).
//   - fanout.go: the hot path: a room message is encoded once per node and
//     the same frame is queued on every local member (BenchmarkFanout).
//   - presence.go: presence.Listener → session:connected/disconnected/
//     updated/count and session:list, ordered per room.
//   - history.go: rooms that keep history (pkg/history): events with seq
//     and epoch through the room's feed, join with since (replay, then live,
//     with no gap or duplicate at the seam), the history message and
//     rc.history.<room>.
//   - catchup.go: Hub.CatchUp, after a reconnect or a slow subscription:
//     history rooms get the messages they lost at their tail.
//   - wire.go: request decoding with errors for people, and the encoders of
//     every server message (hand-written, so field order is fixed and no
//     reflection runs per message).
//
// Server messages never contain a raw newline, so the loop may batch several
// in one frame separated by '\n'. A message body from NATS that is valid JSON
// is embedded as is in "data" (compacted if it spans lines); an empty body is
// null; anything else becomes a JSON string.
package room
