/**
 * The roomcast wire protocol (client ⇄ edge node), as specified in DESIGN.md.
 *
 * WebSocket text frames carry JSON. A server frame may carry several messages
 * separated by "\n" (batching): {@link parseFrame} always splits.
 */

/** Custom event map: event name → payload type. */
export type EventMap = Record<string, unknown>;

/** Session meta: any JSON object (≤ 4 KiB on the node). */
export type Meta = Record<string, unknown>;

/** One entry of a room's presence list. `connected_at` is unix milliseconds. */
export interface Session<M = Meta> {
	session: string;
	user: string;
	meta: M;
	connected_at: number;
}

/** Position in a room's history (issue 10): `epoch` changes when the stream is reset. */
export interface HistoryPosition {
	seq: number;
	epoch?: string;
}

// ── client → server ────────────────────────────────────────────────────────

export interface JoinMessage {
	type: 'join';
	id?: number;
	room: string;
	meta?: unknown;
	/** History recovery (issue 10): replay what was missed since this position. */
	since?: HistoryPosition;
}
export interface LeaveMessage {
	type: 'leave';
	id?: number;
	room: string;
}
export interface PublishMessage {
	type: 'publish';
	id?: number;
	room: string;
	event: string;
	data: unknown;
	echo?: boolean;
}
export interface SendMessage {
	type: 'send';
	id?: number;
	event: string;
	data: unknown;
}
export interface RpcMessage {
	type: 'rpc';
	id?: number;
	method: string;
	data: unknown;
}
export interface PresenceMessage {
	type: 'presence';
	id?: number;
	room: string;
}
export interface PingMessage {
	type: 'ping';
	id?: number;
}
/** A page of a room's history: `limit` (default 100, at most 1000), then `before` or `after` a sequence, or the newest. */
export interface HistoryRequestMessage {
	type: 'history';
	id?: number;
	room: string;
	limit?: number;
	before?: number;
	after?: number;
}

export type ClientMessage =
	| JoinMessage
	| LeaveMessage
	| PublishMessage
	| SendMessage
	| RpcMessage
	| PresenceMessage
	| PingMessage
	| HistoryRequestMessage;

// ── server → client ────────────────────────────────────────────────────────

export interface WelcomeMessage<M = Meta> {
	type: 'welcome';
	session: string;
	node: string;
	user: string;
	meta: M;
	/** Rooms auto-joined from the key's claims or the route's config. */
	rooms: string[];
	/** Seconds between client pings. */
	ping_interval: number;
}

export interface EventMessage<E extends EventMap = EventMap, K extends keyof E & string = keyof E & string> {
	type: 'event';
	/** Absent for direct messages (to this session or user). */
	room?: string;
	event: K;
	data: E[K];
	/** Sender session id; absent when a server or back-end published. */
	from?: string;
	/** Per-room sequence when the room keeps history (issue 10). */
	seq?: number;
	epoch?: string;
}

export interface SessionListMessage<M = Meta> {
	type: 'session:list';
	room: string;
	sessions: Session<M>[];
}

export interface SessionChangeMessage<M = Meta> {
	type: 'session:connected' | 'session:disconnected' | 'session:updated';
	room: string;
	session: string;
	user: string;
	meta: M;
	count: number;
	connected_at?: number;
}

export interface AckMessage {
	type: 'ack';
	id: number;
	/** Set on a join with `since` (issue 10): false when the gap is older than the history (or the room has none). */
	recovered?: boolean;
	/** On the join of a room with history: the room's position when joined. */
	seq?: number;
	epoch?: string;
}

/** One stored event of a history page (`data` typed by the event name). `time` is unix milliseconds. */
export type HistoryEvent<E extends EventMap = EventMap> = {
	[K in keyof E & string]: { seq: number; event: K; data: E[K]; from?: string; time: number };
}[keyof E & string];

/** The answer to a `history` request: events oldest first; `seq` is the room's newest sequence. */
export interface HistoryPageMessage<E extends EventMap = EventMap> {
	type: 'history';
	id: number;
	room: string;
	seq: number;
	epoch: string;
	events: HistoryEvent<E>[];
}
export interface ReplyMessage {
	type: 'reply';
	id: number;
	data: unknown;
}

/** Error codes the node sends in `error` messages. */
export type ServerErrorCode =
	| 'bad_request'
	| 'forbidden'
	| 'not_found'
	| 'rate_limited'
	| 'too_large'
	| 'unavailable'
	| 'timeout';

export interface ErrorMessage {
	type: 'error';
	id?: number;
	code: ServerErrorCode;
	message: string;
}
export interface PongMessage {
	type: 'pong';
	id?: number;
}

export type ServerMessage<E extends EventMap = EventMap, M = Meta> =
	| WelcomeMessage<M>
	| EventMessage<E>
	| SessionListMessage<M>
	| SessionChangeMessage<M>
	| AckMessage
	| ReplyMessage
	| ErrorMessage
	| PongMessage
	| HistoryPageMessage<E>;

/**
 * Splits one server frame into messages. Empty lines are skipped; a line that
 * is not a JSON object with a string `type` is reported to `onBad` and skipped,
 * so one bad message never hides the others of the batch.
 */
export function parseFrame(frame: string, onBad?: (line: string, err: unknown) => void): ServerMessage[] {
	const out: ServerMessage[] = [];
	let start = 0;
	while (start <= frame.length) {
		let end = frame.indexOf('\n', start);
		if (end < 0) end = frame.length;
		const line = frame.slice(start, end).trim();
		start = end + 1;
		if (line === '') continue;
		try {
			const msg = JSON.parse(line) as unknown;
			if (msg === null || typeof msg !== 'object' || typeof (msg as { type?: unknown }).type !== 'string') {
				throw new TypeError('not a roomcast message');
			}
			out.push(msg as ServerMessage);
		} catch (err) {
			onBad?.(line, err);
		}
	}
	return out;
}

/** Encodes one client message as a text frame. */
export function encode(msg: ClientMessage): string {
	return JSON.stringify(msg);
}

const roomToken = /^[A-Za-z0-9_\-:@=]+$/;

/**
 * Reports whether `room` is a valid room name: 1–128 chars of
 * `[A-Za-z0-9_\-:@=]` tokens joined by "." (they become NATS subject tokens).
 */
export function isValidRoom(room: string): boolean {
	if (typeof room !== 'string' || room.length < 1 || room.length > 128) return false;
	return room.split('.').every((t) => roomToken.test(t));
}
