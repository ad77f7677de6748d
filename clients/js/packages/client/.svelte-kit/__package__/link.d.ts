import type { RoomcastError } from './errors.js';
import type { ClientMessage, ServerMessage } from './protocol.js';
/**
 * Connection states:
 * - `idle`: not opened yet;
 * - `connecting`: getting a URL (mint/action) or waiting for the socket and its `welcome`;
 * - `open`: `welcome` received; messages flow;
 * - `reconnecting`: waiting out a backoff delay before the next attempt;
 * - `closed`: closed by `close()`, by a fatal close code (4001, 4003) or by a
 *   normal close (1000) from the node. Only `open()` leaves it.
 */
export type ConnectionState = 'idle' | 'connecting' | 'open' | 'reconnecting' | 'closed';
/** A state change, with what caused it. */
export interface StateInfo {
    state: ConnectionState;
    /** Reconnect attempt number (0 = first retry) for `connecting` / `reconnecting`. */
    attempt?: number;
    /** Milliseconds until the next attempt, for `reconnecting`. */
    delay?: number;
    /** Close code of the socket that just closed, if any. */
    code?: number;
    reason?: string;
    /** Why the client is `closed` for good (fatal close, spent key), or why the last attempt failed. */
    error?: RoomcastError;
}
export interface LinkEvents {
    state: (info: StateInfo) => void;
    message: (msg: ServerMessage) => void;
    /** Non-fatal trouble worth reporting (a mint that failed, a bad frame). Fatal errors also come with state `closed`. */
    error: (err: RoomcastError) => void;
}
/**
 * What a {@link RoomcastClient} talks through: a direct reconnecting socket
 * ({@link Connection}) or a port to the SharedWorker hub ({@link WorkerLink}).
 */
export interface Link {
    readonly state: ConnectionState;
    open(): void;
    close(): void;
    /** Sends when `open`; returns false (and sends nothing) otherwise. */
    send(msg: ClientMessage): boolean;
    /** A hint that the network or page came back: retry now, or probe an open socket. */
    wake(): void;
    on<K extends keyof LinkEvents>(name: K, fn: LinkEvents[K]): () => void;
}
