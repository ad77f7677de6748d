/**
 * The lifecycle events nodes publish on `rc.events.<kind>` (JSON; `at` is
 * unix milliseconds), as DESIGN.md and the README's subject table define them.
 */

/** `rc.events.connect`: a session is open on `node`. `route` is the continuous path, "" for `/_/connect/<key>`. */
export interface ConnectEvent<M = unknown> {
	type: 'connect';
	session: string;
	user: string;
	meta: M;
	node: string;
	route: string;
	remote: string;
	at: number;
}

/** `rc.events.join` / `rc.events.leave`. */
export interface RoomEvent {
	type: 'join' | 'leave';
	session: string;
	user: string;
	room: string;
	node: string;
	at: number;
}

/** `rc.events.close`: the session's socket closed with `code`. */
export interface CloseEvent {
	type: 'close';
	session: string;
	user: string;
	node: string;
	code: number;
	reason: string;
	at: number;
}

/** `rc.events.error`: something went wrong on the session (the node's error code and message). */
export interface ErrorEvent {
	type: 'error';
	session: string;
	user: string;
	node: string;
	code: string;
	message: string;
	at: number;
}

export type LifecycleEvent<M = unknown> = ConnectEvent<M> | RoomEvent | CloseEvent | ErrorEvent;

/** `rc.auth.connect`: what a node asks before upgrading on an `auth: hook` route. */
export interface AuthRequestBody {
	path: string;
	/** The raw query string, without "?". */
	query?: string;
	origin?: string;
	/** The raw Cookie header. */
	cookies?: string;
	/** Authorization, User-Agent, X-Forwarded-For, X-Real-Ip, Accept-Language when present. */
	headers?: Record<string, string>;
	/** host:port of the TCP peer, or the client's IP from a --trusted-proxies peer's X-Forwarded-For. */
	remote: string;
	node: string;
}

const decoder = new TextDecoder();
const encoder = new TextEncoder();

/** Decodes a JSON body; undefined when it is not JSON. */
export function decodeJson<T>(data: Uint8Array): T | undefined {
	try {
		return JSON.parse(decoder.decode(data)) as T;
	} catch {
		return undefined;
	}
}

/**
 * Decodes a client `send` body: nodes forward the frame's `data` as JSON, so
 * this is the value the browser passed; a body that is not JSON stays a string.
 */
export function decodeData(data: Uint8Array): unknown {
	const text = decoder.decode(data);
	if (text === '') return null;
	try {
		return JSON.parse(text);
	} catch {
		return text;
	}
}

/** Encodes a value for a node, which embeds valid JSON as is: always JSON, so "123" stays a string. */
export function encodeData(data: unknown): Uint8Array {
	if (data instanceof Uint8Array) return data;
	return encoder.encode(JSON.stringify(data === undefined ? null : data));
}

export function encodeJson(v: unknown): Uint8Array {
	return encoder.encode(JSON.stringify(v));
}
