/**
 * The roomcast wire protocol (client ⇄ edge node), as specified in DESIGN.md.
 *
 * WebSocket text frames carry JSON. A server frame may carry several messages
 * separated by "\n" (batching): {@link parseFrame} always splits.
 */
/**
 * Splits one server frame into messages. Empty lines are skipped; a line that
 * is not a JSON object with a string `type` is reported to `onBad` and skipped,
 * so one bad message never hides the others of the batch.
 */
export function parseFrame(frame, onBad) {
    const out = [];
    let start = 0;
    while (start <= frame.length) {
        let end = frame.indexOf('\n', start);
        if (end < 0)
            end = frame.length;
        const line = frame.slice(start, end).trim();
        start = end + 1;
        if (line === '')
            continue;
        try {
            const msg = JSON.parse(line);
            if (msg === null || typeof msg !== 'object' || typeof msg.type !== 'string') {
                throw new TypeError('not a roomcast message');
            }
            out.push(msg);
        }
        catch (err) {
            onBad?.(line, err);
        }
    }
    return out;
}
/** Encodes one client message as a text frame. */
export function encode(msg) {
    return JSON.stringify(msg);
}
const roomToken = /^[A-Za-z0-9_\-:@=]+$/;
/**
 * Reports whether `room` is a valid room name: 1–128 chars of
 * `[A-Za-z0-9_\-:@=]` tokens joined by "." (they become NATS subject tokens).
 */
export function isValidRoom(room) {
    if (typeof room !== 'string' || room.length < 1 || room.length > 128)
        return false;
    return room.split('.').every((t) => roomToken.test(t));
}
