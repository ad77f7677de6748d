import type { ServerErrorCode } from './protocol.js';
/**
 * Error codes a {@link RoomcastError} carries: the node's `error` codes, the
 * close codes that end a connection for good, and local conditions.
 */
export type ErrorCode = ServerErrorCode
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
export declare const FATAL_CLOSE_CODES: readonly number[];
/** Close codes after which the client reconnects at once (node draining, service restart). */
export declare const IMMEDIATE_CLOSE_CODES: readonly number[];
/** The error code for a WebSocket close code, or 'disconnected'. */
export declare function closeCodeToError(code: number): ErrorCode;
/** An error from roomcast: a node `error` reply, a fatal close, or a local failure. */
export declare class RoomcastError extends Error {
    readonly name = "RoomcastError";
    /** What went wrong; see {@link ErrorCode}. */
    readonly code: ErrorCode;
    /** The WebSocket close code when the error comes from a close. */
    readonly closeCode?: number;
    /** The request id the node echoed, for errors answering a request. */
    readonly id?: number;
    constructor(code: ErrorCode, message: string, extra?: {
        closeCode?: number;
        id?: number;
        cause?: unknown;
    });
}
