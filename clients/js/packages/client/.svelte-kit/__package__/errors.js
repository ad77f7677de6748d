/** Close codes that end the client for good: reconnecting cannot fix them. */
export const FATAL_CLOSE_CODES = [4001, 4003];
/** Close codes after which the client reconnects at once (node draining, service restart). */
export const IMMEDIATE_CLOSE_CODES = [1001, 1012];
const closeCodeNames = {
    1008: 'policy',
    1009: 'too_large',
    1011: 'internal',
    4001: 'key_invalid',
    4003: 'forbidden',
    4008: 'rate_limited',
    4009: 'slow_consumer'
};
/** The error code for a WebSocket close code, or 'disconnected'. */
export function closeCodeToError(code) {
    return closeCodeNames[code] ?? 'disconnected';
}
/** An error from roomcast: a node `error` reply, a fatal close, or a local failure. */
export class RoomcastError extends Error {
    name = 'RoomcastError';
    /** What went wrong; see {@link ErrorCode}. */
    code;
    /** The WebSocket close code when the error comes from a close. */
    closeCode;
    /** The request id the node echoed, for errors answering a request. */
    id;
    constructor(code, message, extra = {}) {
        super(message, extra.cause === undefined ? undefined : { cause: extra.cause });
        this.code = code;
        if (extra.closeCode !== undefined)
            this.closeCode = extra.closeCode;
        if (extra.id !== undefined)
            this.id = extra.id;
    }
}
