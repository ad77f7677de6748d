import { type BackoffOptions } from './backoff.js';
import { type Clock } from './clock.js';
import type { ConnectionState, Link, LinkEvents } from './link.js';
import { type ClientMessage } from './protocol.js';
/** The part of the browser WebSocket the client uses; a test double can implement it. */
export interface WebSocketLike {
    readonly readyState: number;
    onopen: ((ev: unknown) => void) | null;
    onmessage: ((ev: {
        data: unknown;
    }) => void) | null;
    onclose: ((ev: {
        code: number;
        reason: string;
    }) => void) | null;
    onerror: ((ev: unknown) => void) | null;
    send(data: string): void;
    close(code?: number, reason?: string): void;
}
export type WebSocketConstructor = new (url: string) => WebSocketLike;
/**
 * Subscribes `wake` to "the network or the page is back" signals and returns
 * an unsubscribe function. The default listens to `online` on the global
 * object (window or worker) and to `visibilitychange` → visible on `document`.
 */
export type WakeSource = (wake: () => void) => () => void;
export declare const browserWake: WakeSource;
/** How to reach a node and how to behave when the connection drops. All durations in milliseconds. */
export interface ConnectionOptions {
    /**
     * A connection URL: a continuous route (`/chat`, reusable) or a one-time
     * `/_/connect/<key>` URL (usable once: pass `mint` to reconnect).
     * http(s) and relative URLs are turned into ws(s) against `baseUrl`.
     */
    url?: string | URL;
    /** A one-time connection key: connects to `<baseUrl>/_/connect/<key>`. Usable once. */
    key?: string;
    /**
     * Returns a fresh connection URL (e.g. `/_/connect/<key>` from your back-end).
     * Called before every attempt, since keys are one-time. Wins over `url`/`key`.
     */
    mint?: () => Promise<string | URL>;
    /** Base for relative URLs. Default: `location.href` in browsers. */
    baseUrl?: string | URL;
    /** WebSocket implementation. Default: `globalThis.WebSocket`. */
    WebSocket?: WebSocketConstructor;
    /** Full-jitter backoff: base 500, cap 20 000 by default. */
    backoff?: BackoffOptions;
    /** Ping period until `welcome` says otherwise (its `ping_interval`). Default 25 000. */
    pingInterval?: number;
    /**
     * How long to wait for a pong (or any message) after a ping before the
     * socket is declared dead and replaced. Default 10 000, never more than the
     * ping period.
     */
    pongTimeout?: number;
    /** Limit for `mint`, the socket opening and the `welcome`, per attempt. Default 15 000. */
    connectTimeout?: number;
    /** Close codes that end the client instead of reconnecting. Default [4001, 4003]. */
    fatalCloseCodes?: readonly number[];
    /** Time source (tests). */
    clock?: Clock;
    /** Randomness in [0, 1) for jitter (tests). Default Math.random. */
    random?: () => number;
    /** Wake signals; null disables them. Default {@link browserWake}. */
    wake?: WakeSource | null;
}
/** True for `/_/connect/<key>` and `/_/connect?key=` URLs: one-time keys. */
export declare function isOneTimeUrl(url: string): boolean;
/** Resolves `url` against `base` (or `location`) and maps http(s) to ws(s). */
export declare function toWebSocketUrl(url: string | URL, base?: string | URL): string;
/**
 * One reconnecting WebSocket to a roomcast node: full-jitter backoff that
 * never gives up, a fresh URL from `mint()` per attempt, immediate retry on
 * `online`/visible and on close 1001/1012, client pings with a pong deadline,
 * and fatal close codes surfaced as errors. It knows nothing of rooms: a
 * {@link RoomcastClient} re-joins them on each `welcome`.
 */
export declare class Connection implements Link {
    #private;
    constructor(opts?: ConnectionOptions);
    get state(): ConnectionState;
    /** Current reconnect attempt (0 after a welcome). */
    get attempt(): number;
    on<K extends keyof LinkEvents>(name: K, fn: LinkEvents[K]): () => void;
    open(): void;
    /** Closes for good (until `open()`); no reconnect. */
    close(code?: number, reason?: string): void;
    send(msg: ClientMessage): boolean;
    wake(): void;
}
