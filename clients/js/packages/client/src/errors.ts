import type { ServerErrorCode } from './protocol.js';

/**
 * Error codes a {@link RoomcastError} carries: the node's `error` codes, the
 * close codes that end a connection for good, and local conditions.
 */
export type ErrorCode =
	| ServerErrorCode
	/** Close 4001: the connection key is invalid, expired or already used. Get a fresh one. */
	| 'key_invalid'
	/** A one-time key or `/_/connect/<key>` URL was used once already and no `mint` was given to get another. */
	| 'key_used'
	/** `mint()` (or the form action) threw or returned no URL. Retried with backoff. */
	| 'mint_failed'
	/** The connection dropped before the reply arrived; the request may or may not have been applied. */
	| 'disconnected'
	/** The client was closed (by `close()`, a fatal close code or a normal close by the server). */
	| 'closed'
	/** Close 4009: the node cut this slow consumer. Retried with backoff. */
	| 'slow_consumer'
	/** Close 1008: policy violation. */
	| 'policy'
	/** Close 1011: internal error on the node. */
	| 'internal';

/** Close codes that end the client for good: reconnecting cannot fix them. */
export const FATAL_CLOSE_CODES: readonly number[] = [4001, 4003];

/** Close codes after which the client reconnects at once (node draining, service restart). */
export const IMMEDIATE_CLOSE_CODES: readonly number[] = [1001, 1012];

const closeCodeNames: Record<number, ErrorCode> = {
	1008: 'policy',
	1009: 'too_large',
	1011: 'internal',
	4001: 'key_invalid',
	4003: 'forbidden',
	4008: 'rate_limited',
	4009: 'slow_consumer'
};

/** The error code for a WebSocket close code, or 'disconnected'. */
export function closeCodeToError(code: number): ErrorCode {
	return closeCodeNames[code] ?? 'disconnected';
}

/** An error from roomcast: a node `error` reply, a fatal close, or a local failure. */
export class RoomcastError extends Error {
	override readonly name = 'RoomcastError';
	/** What went wrong; see {@link ErrorCode}. */
	readonly code: ErrorCode;
	/** The WebSocket close code when the error comes from a close. */
	readonly closeCode?: number;
	/** The request id the node echoed, for errors answering a request. */
	readonly id?: number;

	constructor(code: ErrorCode, message: string, extra: { closeCode?: number; id?: number; cause?: unknown } = {}) {
		super(message, extra.cause === undefined ? undefined : { cause: extra.cause });
		this.code = code;
		if (extra.closeCode !== undefined) this.closeCode = extra.closeCode;
		if (extra.id !== undefined) this.id = extra.id;
	}
}
