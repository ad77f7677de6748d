import { type Readable } from 'svelte/store';
import { RoomcastClient, type ClientOptions, type EventContext, type PublishOptions, type RpcOptions } from '../client.js';
import type { RoomcastError } from '../errors.js';
import type { ConnectionState, StateInfo } from '../link.js';
import type { EventMap, Meta, Session, WelcomeMessage } from '../protocol.js';
/** One received event, as kept by the `events` store and the `<WebSocket>` component. */
export interface ReceivedEvent<E extends EventMap = EventMap> extends EventContext {
    event: keyof E & string;
    data: E[keyof E];
    /** Local receive time, unix ms. */
    at: number;
}
export interface RoomcastOptions extends ClientOptions {
    /** An existing client to wrap instead of creating one. */
    client?: RoomcastClient<never, never>;
}
/**
 * Svelte 5 wrapper of a {@link RoomcastClient}: `state`, `welcome`, `error`
 * and presence are `$state`, so templates and `$derived` update by themselves.
 * Build it with {@link createRoomcast}.
 */
export declare class Roomcast<E extends EventMap = EventMap, M = Meta> {
    #private;
    readonly client: RoomcastClient<E, M>;
    /** Connection state. */
    state: ConnectionState;
    /** The last state change with its cause (close code, backoff delay, error). */
    info: StateInfo;
    /** The last welcome (session, node, user). */
    welcome: WelcomeMessage<M> | undefined;
    /** The last error not tied to a request (fatal close, failed mint, refused re-join). */
    error: RoomcastError | undefined;
    /** Svelte store of the last received event (`$events` in templates). */
    readonly events: Readable<ReceivedEvent<E> | undefined>;
    constructor(options?: RoomcastOptions);
    /** Reactive: the sessions in `room`, oldest first. */
    sessions(room: string): Session<M>[];
    /** Reactive: the member count of `room`. */
    count(room: string): number;
    /** Joins `room` and returns a reactive handle to it. */
    room(name: string, meta?: M): RoomHandle<E, M>;
    join(room: string, meta?: M): Promise<void>;
    leave(room: string): Promise<void>;
    publish<K extends keyof E & string>(room: string, event: K, data: E[K], opts?: PublishOptions): Promise<void>;
    send<K extends keyof E & string>(event: K, data: E[K]): Promise<void>;
    rpc<T = unknown>(method: string, data?: unknown, opts?: RpcOptions): Promise<T>;
    on<K extends keyof E & string>(event: K, fn: (data: E[K], ctx: EventContext) => void): () => void;
    open(): void;
    close(): void;
    /** Closes the connection and drops listeners. Called on component destroy when created during component init. */
    destroy(): void;
}
/** A joined room: reactive `sessions`, `count`, `joined` and `error`. */
export declare class RoomHandle<E extends EventMap = EventMap, M = Meta> {
    #private;
    readonly name: string;
    /** True once the node acked the join. */
    joined: boolean;
    /** Why the join failed, if it did. */
    error: RoomcastError | undefined;
    /** Resolves when joined. */
    readonly ready: Promise<void>;
    constructor(rc: Roomcast<E, M>, name: string, meta?: M);
    /** Reactive: the room's sessions, oldest first. */
    get sessions(): Session<M>[];
    /** Reactive: the room's member count. */
    get count(): number;
    publish<K extends keyof E & string>(event: K, data: E[K], opts?: PublishOptions): Promise<void>;
    leave(): Promise<void>;
}
/**
 * Creates a {@link Roomcast}. Connects at once in the browser (not during
 * SSR). Called during component initialisation, it is destroyed with the component.
 *
 * ```svelte
 * <script lang="ts">
 *   import { createRoomcast } from '@roomcast/client/svelte';
 *   const rc = createRoomcast<{ chat: string }, { name: string }>({ action: '?/ws' });
 *   const lobby = rc.room('lobby', { name: 'ada' });
 * </script>
 * <p>{rc.state} — {lobby.count} online</p>
 * {#each lobby.sessions as s (s.session)}<li>{s.meta.name}</li>{/each}
 * ```
 */
export declare function createRoomcast<E extends EventMap = EventMap, M = Meta>(options?: RoomcastOptions): Roomcast<E, M>;
