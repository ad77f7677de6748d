import { onDestroy } from 'svelte';
import { writable, type Readable } from 'svelte/store';
import { RoomcastClient, type ClientOptions, type EventContext, type PublishOptions, type RpcOptions } from '../client.js';
import type { RoomcastError } from '../errors.js';
import type { ConnectionState, StateInfo } from '../link.js';
import type { RoomPresence } from '../presence.js';
import type { EventMap, Meta, Session, WelcomeMessage } from '../protocol.js';

/** One received event, as kept by the `events` store and the `<WebSocket>` component. */
export interface ReceivedEvent<E extends EventMap = EventMap> extends EventContext {
	event: keyof E & string;
	data: E[keyof E];
	/** Local receive time, unix ms. */
	at: number;
}

export interface RoomcastOptions extends ClientOptions {
	/**
	 * An existing client to wrap instead of creating one (e.g. the `<WebSocket>`
	 * component's). Its presence so far is picked up; `destroy()` then only
	 * detaches, the client stays open.
	 */
	client?: RoomcastClient<never, never>;
}

/**
 * Svelte 5 wrapper of a {@link RoomcastClient}: `state`, `welcome`, `error`
 * and presence are `$state`, so templates and `$derived` update by themselves.
 * Build it with {@link createRoomcast}.
 */
export class Roomcast<E extends EventMap = EventMap, M = Meta> {
	readonly client: RoomcastClient<E, M>;
	/** Connection state. */
	state: ConnectionState = $state('idle');
	/** The last state change with its cause (close code, backoff delay, error). */
	info: StateInfo = $state.raw({ state: 'idle' });
	/** The last welcome (session, node, user). */
	welcome: WelcomeMessage<M> | undefined = $state.raw(undefined);
	/** The last error not tied to a request (fatal close, failed mint, refused re-join). */
	error: RoomcastError | undefined = $state.raw(undefined);
	/** Svelte store of the last received event (`$events` in templates). */
	readonly events: Readable<ReceivedEvent<E> | undefined>;
	#presence: Record<string, RoomPresence<M>> = $state({});
	#offs: Array<() => void> = [];
	#owned: boolean;

	constructor(options: RoomcastOptions = {}) {
		this.#owned = !options.client;
		const autoOpen = options.autoOpen ?? typeof window !== 'undefined';
		this.client = (options.client as RoomcastClient<E, M> | undefined) ?? new RoomcastClient<E, M>({ ...options, autoOpen: false });
		const events = writable<ReceivedEvent<E> | undefined>(undefined);
		this.events = { subscribe: events.subscribe };
		const c = this.client;
		this.#offs.push(
			c.listen('state', (info) => {
				this.state = info.state;
				this.info = info;
			}),
			c.listen('welcome', (w) => {
				this.welcome = w;
				this.error = undefined;
			}),
			c.listen('error', (e) => {
				this.error = e;
			}),
			c.listen('presence', (p) => {
				this.#presence[p.room] = p;
			}),
			c.on('*', (data, ctx) => {
				events.set({ ...ctx, event: ctx.event as keyof E & string, data: data as E[keyof E], at: Date.now() });
			})
		);
		this.state = c.state;
		this.welcome = c.welcome;
		for (const room of c.rooms) this.#presence[room] = { room, sessions: c.sessions(room), count: c.count(room) };
		if (autoOpen && !options.client) c.open();
	}

	/** Reactive: the sessions in `room`, oldest first. */
	sessions(room: string): Session<M>[] {
		return this.#presence[room]?.sessions ?? [];
	}

	/** Reactive: the member count of `room`. */
	count(room: string): number {
		return this.#presence[room]?.count ?? 0;
	}

	/** Joins `room` and returns a reactive handle to it. */
	room(name: string, meta?: M): RoomHandle<E, M> {
		return new RoomHandle(this, name, meta);
	}

	join(room: string, meta?: M): Promise<void> {
		return this.client.join(room, meta);
	}

	leave(room: string): Promise<void> {
		delete this.#presence[room];
		return this.client.leave(room);
	}

	publish<K extends keyof E & string>(room: string, event: K, data: E[K], opts?: PublishOptions): Promise<void> {
		return this.client.publish(room, event, data, opts);
	}

	send<K extends keyof E & string>(event: K, data: E[K]): Promise<void> {
		return this.client.send(event, data);
	}

	rpc<T = unknown>(method: string, data?: unknown, opts?: RpcOptions): Promise<T> {
		return this.client.rpc<T>(method, data, opts);
	}

	on<K extends keyof E & string>(event: K, fn: (data: E[K], ctx: EventContext) => void): () => void {
		return this.client.on(event, fn);
	}

	open(): void {
		this.client.open();
	}

	close(): void {
		this.client.close();
	}

	/**
	 * Closes the connection and drops listeners (a wrapped `client` is only
	 * detached). Called on component destroy when created during component init.
	 */
	destroy(): void {
		this.#offs.forEach((f) => f());
		this.#offs = [];
		if (this.#owned) this.client.destroy();
	}
}

/** A joined room: reactive `sessions`, `count`, `joined` and `error`. */
export class RoomHandle<E extends EventMap = EventMap, M = Meta> {
	readonly name: string;
	/** True once the node acked the join. */
	joined = $state(false);
	/** Why the join failed, if it did. */
	error: RoomcastError | undefined = $state.raw(undefined);
	/** Resolves when joined. */
	readonly ready: Promise<void>;
	#rc: Roomcast<E, M>;

	constructor(rc: Roomcast<E, M>, name: string, meta?: M) {
		this.#rc = rc;
		this.name = name;
		this.ready = rc.join(name, meta).then(
			() => {
				this.joined = true;
			},
			(err: RoomcastError) => {
				this.error = err;
				throw err;
			}
		);
		this.ready.catch(() => {});
	}

	/** Reactive: the room's sessions, oldest first. */
	get sessions(): Session<M>[] {
		return this.#rc.sessions(this.name);
	}

	/** Reactive: the room's member count. */
	get count(): number {
		return this.#rc.count(this.name);
	}

	publish<K extends keyof E & string>(event: K, data: E[K], opts?: PublishOptions): Promise<void> {
		return this.#rc.publish(this.name, event, data, opts);
	}

	leave(): Promise<void> {
		this.joined = false;
		return this.#rc.leave(this.name);
	}
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
export function createRoomcast<E extends EventMap = EventMap, M = Meta>(options: RoomcastOptions = {}): Roomcast<E, M> {
	const rc = new Roomcast<E, M>(options);
	try {
		onDestroy(() => rc.destroy());
	} catch {
		// Outside component initialisation: the caller destroys it.
	}
	return rc;
}
