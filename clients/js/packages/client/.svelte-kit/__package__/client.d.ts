import { type ConnectionOptions } from './connection.js';
import { RoomcastError } from './errors.js';
import type { ConnectionState, Link, StateInfo } from './link.js';
import { type RoomPresence } from './presence.js';
import { type EventMap, type EventMessage, type HistoryPosition, type Meta, type ServerMessage, type Session, type SessionChangeMessage, type WelcomeMessage } from './protocol.js';
import { type SharedWorkerLike } from './shared/port-link.js';
export interface ClientOptions extends ConnectionOptions {
    /**
     * A SvelteKit form action (or endpoint) that mints a key and answers
     * `{url}`; POSTed before every connection attempt. Used when `mint` is absent.
     */
    action?: string | URL;
    /** Request options for `action` (body, headers, credentials). */
    actionInit?: RequestInit;
    /**
     * Share one socket among all tabs of the origin through a SharedWorker
     * running `@roomcast/client/worker`. Return the worker, e.g.
     * `() => new SharedWorker(new URL('@roomcast/client/worker', import.meta.url), { type: 'module', name: 'roomcast' })`.
     * Ignored (direct socket) where SharedWorker does not exist or the factory throws.
     * All tabs then share one session on the node.
     */
    sharedWorker?: () => SharedWorkerLike;
    /** Connect on construction. Default true. */
    autoOpen?: boolean;
    /** Default rpc timeout in ms. Default 10 000. */
    rpcTimeout?: number;
    /**
     * Most requests sent while disconnected wait for the next `welcome`; past
     * this many they are rejected with `unavailable`. Default 1000.
     */
    maxQueued?: number;
    /**
     * Room history recovery (issue 10): re-join with `since: {seq, epoch}` of
     * the last event seen. Default false until the node supports it.
     */
    recover?: boolean;
    /** A ready link (tests, custom transports). Wins over everything above. */
    link?: Link;
}
/** Where an event came from. */
export interface EventContext {
    /** The room, absent for direct messages. */
    room?: string;
    /** Sender session id; absent when a back-end published. */
    from?: string;
    seq?: number;
    epoch?: string;
}
/** Client-level notifications, through {@link RoomcastClient.listen}. */
export interface ClientEvents<E extends EventMap, M> {
    state: (info: StateInfo) => void;
    welcome: (msg: WelcomeMessage<M>) => void;
    /** Errors not tied to a pending request: fatal closes, failed mints, failed automatic re-joins. */
    error: (err: RoomcastError) => void;
    /** A room's presence changed (list or delta). */
    presence: (p: RoomPresence<M>) => void;
    'session:connected': (msg: SessionChangeMessage<M>) => void;
    'session:disconnected': (msg: SessionChangeMessage<M>) => void;
    'session:updated': (msg: SessionChangeMessage<M>) => void;
    /** Every `event` message, whatever its name. */
    event: (msg: EventMessage<E>) => void;
    /** Every server message (debugging). */
    message: (msg: ServerMessage<E, M>) => void;
}
export interface PublishOptions {
    /** false: the node does not send the event back to this session. Default true. */
    echo?: boolean;
}
export interface RpcOptions {
    /** Milliseconds before the promise rejects with code `timeout`. */
    timeout?: number;
}
type EventListener<E extends EventMap, K extends keyof E> = (data: E[K], ctx: EventContext) => void;
/**
 * A roomcast client: rooms, presence, publish, rpc and direct messages over
 * one reconnecting connection.
 *
 * `E` maps event names to payload types; `M` types session meta.
 *
 * ```ts
 * type Events = { chat: { text: string } };
 * const rc = new RoomcastClient<Events, { name: string }>({ mint: getUrl });
 * await rc.join('lobby', { name: 'ada' });
 * rc.on('chat', (msg, { from }) => console.log(from, msg.text));
 * await rc.publish('lobby', 'chat', { text: 'hi' });
 * ```
 */
export declare class RoomcastClient<E extends EventMap = EventMap, M = Meta> {
    #private;
    constructor(options?: ClientOptions);
    /** Connection state; see {@link ConnectionState}. */
    get state(): ConnectionState;
    /** The last `welcome` (session id, node id, user, meta), or undefined before the first. */
    get welcome(): WelcomeMessage<M> | undefined;
    /** This session's id on the node (changes on reconnect). */
    get session(): string | undefined;
    /** Rooms this client is in or joining. */
    get rooms(): string[];
    /** Whether the client uses a SharedWorker (one socket for all tabs). */
    get shared(): boolean;
    /** Connects (again) after `close()` or with `autoOpen: false`. */
    open(): void;
    /** Closes the connection for good; pending requests reject with `closed`. */
    close(): void;
    /** Closes and drops every listener. */
    destroy(): void;
    /**
     * Joins `room` with optional session `meta`. Resolves on the node's ack
     * (a `session:list` follows). The room is re-joined after every reconnect
     * until {@link leave}. Rejects with a {@link RoomcastError} (`bad_request`,
     * `forbidden`, …); calls made while disconnected wait for the connection.
     */
    join(room: string, meta?: M): Promise<void>;
    /** Leaves `room`; its presence list is dropped. Resolves on the node's ack (at once when disconnected). */
    leave(room: string): Promise<void>;
    /**
     * Broadcasts `event` with `data` to every session in `room` (this one too
     * unless `echo: false`). Resolves on the node's ack; the returned promise
     * may be ignored (failures then go unnoticed without an unhandled-rejection warning).
     */
    publish<K extends keyof E & string>(room: string, event: K, data: E[K], opts?: PublishOptions): Promise<void>;
    /** Sends `event` to the app back-end that owns this session (`rc.send.<session>`). Resolves on ack. */
    send<K extends keyof E & string>(event: K, data: E[K]): Promise<void>;
    /**
     * Calls `method` on the back-ends (`rc.rpc.<method>`) and resolves with the
     * reply's data. Rejects with a {@link RoomcastError}: the node's code, or
     * `timeout` / `disconnected` / `closed`.
     */
    rpc<T = unknown>(method: string, data?: unknown, opts?: RpcOptions): Promise<T>;
    /** Asks the node for a fresh `session:list` of `room`; resolves with the new presence. */
    presence(room: string): Promise<RoomPresence<M>>;
    /** The sessions in `room` as last known, oldest first. */
    sessions(room: string): Session<M>[];
    /** The member count of `room` as the node last reported it. */
    count(room: string): number;
    /** The last history position seen in `room` (rooms with history only). */
    position(room: string): HistoryPosition | undefined;
    /**
     * Listens to custom event `event` (from rooms and direct messages); `'*'`
     * listens to all of them. Returns the unsubscribe function.
     */
    on<K extends keyof E & string>(event: K, fn: EventListener<E, K>): () => void;
    on(event: '*', fn: (data: unknown, ctx: EventContext & {
        event: string;
    }) => void): () => void;
    /** Listens to client-level notifications: state, welcome, error, presence, … */
    listen<K extends keyof ClientEvents<E, M>>(name: K, fn: ClientEvents<E, M>[K]): () => void;
}
/** Builds the link for `options`: a SharedWorker port when asked and possible, else a direct socket. */
export declare function createLink(options: ClientOptions): Link;
export {};
