import { fetchActionUrl } from './action.js';
import { systemClock, type Clock } from './clock.js';
import { Connection, type ConnectionOptions } from './connection.js';
import { Emitter } from './emitter.js';
import { RoomcastError } from './errors.js';
import type { ConnectionState, Link, StateInfo } from './link.js';
import { PresenceTracker, type RoomPresence } from './presence.js';
import {
	isValidRoom,
	type AckMessage,
	type ClientMessage,
	type EventMap,
	type EventMessage,
	type HistoryEvent,
	type HistoryPageMessage,
	type HistoryPosition,
	type HistoryRequestMessage,
	type JoinMessage,
	type Meta,
	type ServerMessage,
	type Session,
	type SessionChangeMessage,
	type WelcomeMessage
} from './protocol.js';
import { FallbackLink } from './shared/fallback-link.js';
import { WorkerLink, type SharedWorkerLike } from './shared/port-link.js';

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
	 * Ignored (direct socket) where SharedWorker does not exist or the factory throws;
	 * a worker whose script fails to load (its `error` event) or that does not
	 * answer within `sharedWorkerTimeout` is replaced by a direct socket too.
	 * All tabs then share one session on the node.
	 */
	sharedWorker?: () => SharedWorkerLike;
	/** How long (ms) the SharedWorker may take to answer before the tab uses a direct socket. Default 5 000. */
	sharedWorkerTimeout?: number;
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
	 * Room history recovery: (re-)join rooms with history with `since: {seq, epoch}`
	 * of the last event seen (or of the join's ack), so the node replays what was
	 * missed. Default true; see the `recovered` notification.
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
	/**
	 * The answer to a join (explicit or automatic after a reconnect) sent with
	 * `since`. `recovered: true`: the missed events follow, in order, as ordinary
	 * events. `recovered: false`: they are gone (older than the history, or the
	 * history was reset): refetch the room's state ({@link RoomcastClient.history}
	 * or your back-end); live events carry on from `position`.
	 */
	recovered: (info: RecoveredInfo) => void;
}

/** See {@link ClientEvents.recovered}. */
export interface RecoveredInfo {
	room: string;
	recovered: boolean;
	/** The room's position after the join (undefined for a room without history). */
	position: HistoryPosition | undefined;
}

export interface HistoryOptions {
	/** At most this many events (node default 100, at most 1000). */
	limit?: number;
	/** The newest events below this sequence (paging back). */
	before?: number;
	/** The oldest events above this sequence (paging forward). */
	after?: number;
}

/** A page of a room's history: events oldest first; `seq` and `epoch` are the room's newest position. */
export interface HistoryPage<E extends EventMap = EventMap> {
	room: string;
	seq: number;
	epoch: string;
	events: HistoryEvent<E>[];
}

export interface PublishOptions {
	/** false: the node does not send the event back to this session. Default true. */
	echo?: boolean;
}

export interface RpcOptions {
	/** Milliseconds before the promise rejects with code `timeout`. */
	timeout?: number;
}

interface Pending {
	id: number;
	msg: ClientMessage;
	/** joins are re-sent after a reconnect; other requests fail with `disconnected`. */
	join: boolean;
	sent: boolean;
	resolve(value: unknown): void;
	reject(err: RoomcastError): void;
	timer?: unknown;
}

interface JoinedRoom {
	meta: unknown;
	/** Auto-joined by the node (claims / route): never re-joined by the client. */
	auto: boolean;
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
export class RoomcastClient<E extends EventMap = EventMap, M = Meta> {
	readonly #link: Link;
	readonly #clock: Clock;
	readonly #opts: ClientOptions;
	#pending = new Map<number, Pending>();
	#nextId = 1;
	#rooms = new Map<string, JoinedRoom>();
	#presence = new PresenceTracker<M>();
	#positions = new Map<string, HistoryPosition>();
	#presenceWaiters = new Map<string, Array<(p: RoomPresence<M>) => void>>();
	#welcome: WelcomeMessage<M> | undefined;
	#listeners = new Map<string, Set<(data: never, ctx: EventContext) => void>>();
	#sys = new Emitter<ClientEvents<E, M>>();
	#offs: Array<() => void> = [];
	/** The `open` state change, held back until its welcome is handled. */
	#openInfo: StateInfo | undefined;

	constructor(options: ClientOptions = {}) {
		this.#opts = options;
		this.#clock = options.clock ?? systemClock;
		this.#link = options.link ?? createLink(options);
		this.#offs.push(
			this.#link.on('state', (info) => this.#onState(info)),
			this.#link.on('message', (msg) => this.#onMessage(msg as ServerMessage<E, M>)),
			this.#link.on('error', (err) => this.#sys.emit('error', err))
		);
		if (options.autoOpen !== false) this.#link.open();
	}

	/** Connection state; see {@link ConnectionState}. */
	get state(): ConnectionState {
		return this.#link.state;
	}

	/** The last `welcome` (session id, node id, user, meta), or undefined before the first. */
	get welcome(): WelcomeMessage<M> | undefined {
		return this.#welcome;
	}

	/** This session's id on the node (changes on reconnect). */
	get session(): string | undefined {
		return this.#welcome?.session;
	}

	/** Rooms this client is in or joining. */
	get rooms(): string[] {
		return [...this.#rooms.keys()];
	}

	/** Whether the client uses a SharedWorker (one socket for all tabs). */
	get shared(): boolean {
		if (this.#link instanceof FallbackLink) return this.#link.shared;
		return this.#link instanceof WorkerLink;
	}

	/** Connects (again) after `close()` or with `autoOpen: false`. */
	open(): void {
		this.#link.open();
	}

	/** Closes the connection for good; pending requests reject with `closed`. */
	close(): void {
		this.#link.close();
	}

	/** Closes and drops every listener. */
	destroy(): void {
		this.close();
		this.#offs.forEach((f) => f());
		this.#listeners.clear();
		this.#sys.clear();
	}

	/**
	 * Joins `room` with optional session `meta`. Resolves on the node's ack
	 * (a `session:list` follows). The room is re-joined after every reconnect
	 * until {@link leave}. Rejects with a {@link RoomcastError} (`bad_request`,
	 * `forbidden`, …); calls made while disconnected wait for the connection.
	 */
	join(room: string, meta?: M): Promise<void> {
		if (!isValidRoom(room)) {
			return Promise.reject(
				new RoomcastError(
					'bad_request',
					`room "${room}" is invalid: use 1–128 chars of [A-Za-z0-9_-:@=] in dot-separated tokens`
				)
			);
		}
		const known = this.#rooms.get(room);
		if (known?.auto) return Promise.resolve();
		this.#rooms.set(room, { meta, auto: false });
		const msg: ClientMessage = { type: 'join', room };
		if (meta !== undefined) msg.meta = meta;
		this.#addSince(msg);
		return this.#request(msg, { join: true }).then(() => undefined);
	}

	/** Leaves `room`; its presence list is dropped. Resolves on the node's ack (at once when disconnected). */
	leave(room: string): Promise<void> {
		this.#rooms.delete(room);
		this.#presence.delete(room);
		this.#positions.delete(room);
		for (const p of [...this.#pending.values()]) {
			if (p.join && !p.sent && (p.msg as { room?: string }).room === room) {
				this.#settle(p.id)?.reject(new RoomcastError('closed', `left ${room} before the join was sent`));
			}
		}
		if (this.#link.state !== 'open') return Promise.resolve();
		return this.#request({ type: 'leave', room }).then(() => undefined);
	}

	/**
	 * Broadcasts `event` with `data` to every session in `room` (this one too
	 * unless `echo: false`). Resolves on the node's ack; the returned promise
	 * may be ignored (failures then go unnoticed without an unhandled-rejection warning).
	 */
	publish<K extends keyof E & string>(room: string, event: K, data: E[K], opts: PublishOptions = {}): Promise<void> {
		const msg: ClientMessage = { type: 'publish', room, event, data };
		if (opts.echo === false) msg.echo = false;
		return quiet(this.#request(msg).then(() => undefined));
	}

	/** Sends `event` to the app back-end that owns this session (`rc.send.<session>`). Resolves on ack. */
	send<K extends keyof E & string>(event: K, data: E[K]): Promise<void> {
		return quiet(this.#request({ type: 'send', event, data }).then(() => undefined));
	}

	/**
	 * Calls `method` on the back-ends (`rc.rpc.<method>`) and resolves with the
	 * reply's data. Rejects with a {@link RoomcastError}: the node's code, or
	 * `timeout` / `disconnected` / `closed`.
	 */
	rpc<T = unknown>(method: string, data?: unknown, opts: RpcOptions = {}): Promise<T> {
		const timeout = opts.timeout ?? this.#opts.rpcTimeout ?? 10_000;
		return this.#request({ type: 'rpc', method, data: data ?? null }, { timeout }) as Promise<T>;
	}

	/** Asks the node for a fresh `session:list` of `room`; resolves with the new presence. */
	presence(room: string): Promise<RoomPresence<M>> {
		return new Promise((resolve, reject) => {
			const waiters = this.#presenceWaiters.get(room) ?? [];
			waiters.push(resolve);
			this.#presenceWaiters.set(room, waiters);
			this.#request({ type: 'presence', room }).catch((err: RoomcastError) => {
				const list = this.#presenceWaiters.get(room);
				const i = list?.indexOf(resolve) ?? -1;
				if (list && i >= 0) list.splice(i, 1);
				reject(err);
			});
		});
	}

	/** The sessions in `room` as last known, oldest first. */
	sessions(room: string): Session<M>[] {
		return this.#presence.sessions(room);
	}

	/** The member count of `room` as the node last reported it. */
	count(room: string): number {
		return this.#presence.count(room);
	}

	/**
	 * Reads a page of `room`'s history (same `allow` rules as `join`; the room
	 * need not be joined): the newest `limit` events, or those `before` /
	 * `after` a sequence, oldest first. Rejects with `not_found` for a room
	 * without history. Events are typed by the client's event map (or `P`).
	 */
	history<P extends EventMap = E>(room: string, opts: HistoryOptions = {}): Promise<HistoryPage<P>> {
		const msg: HistoryRequestMessage = { type: 'history', room };
		if (opts.limit !== undefined) msg.limit = opts.limit;
		if (opts.before !== undefined) msg.before = opts.before;
		if (opts.after !== undefined) msg.after = opts.after;
		return this.#request(msg).then((m) => {
			const page = m as HistoryPageMessage<P>;
			return { room: page.room ?? room, seq: page.seq, epoch: page.epoch, events: page.events ?? [] };
		});
	}

	/**
	 * The history position of `room` (rooms with history only): the `seq` and
	 * `epoch` of the last event received, or of the join's ack. Sent as `since`
	 * on re-joins.
	 */
	position(room: string): HistoryPosition | undefined {
		return this.#positions.get(room);
	}

	/**
	 * Listens to custom event `event` (from rooms and direct messages); `'*'`
	 * listens to all of them. Returns the unsubscribe function.
	 */
	on<K extends keyof E & string>(event: K, fn: EventListener<E, K>): () => void;
	on(event: '*', fn: (data: unknown, ctx: EventContext & { event: string }) => void): () => void;
	on(event: string, fn: (data: never, ctx: never) => void): () => void {
		let set = this.#listeners.get(event);
		if (!set) this.#listeners.set(event, (set = new Set()));
		const f = fn as (data: never, ctx: EventContext) => void;
		set.add(f);
		return () => {
			set.delete(f);
		};
	}

	/** Listens to client-level notifications: state, welcome, error, presence, … */
	listen<K extends keyof ClientEvents<E, M>>(name: K, fn: ClientEvents<E, M>[K]): () => void {
		return this.#sys.on(name, fn);
	}

	// ── internals ─────────────────────────────────────────────────────────

	#addSince(msg: ClientMessage): void {
		if (this.#opts.recover === false || msg.type !== 'join') return;
		const pos = this.#positions.get(msg.room);
		if (pos) msg.since = pos;
	}

	#request(msg: ClientMessage, o: { join?: boolean; timeout?: number } = {}): Promise<unknown> {
		const queued = [...this.#pending.values()].filter((p) => !p.sent).length;
		if (this.#link.state !== 'open' && queued >= (this.#opts.maxQueued ?? 1000)) {
			return Promise.reject(new RoomcastError('unavailable', 'not connected and too many requests queued'));
		}
		if (this.#link.state === 'closed') {
			return Promise.reject(new RoomcastError('closed', 'the client is closed: call open() first'));
		}
		const id = this.#nextId++;
		msg.id = id;
		return new Promise((resolve, reject) => {
			const p: Pending = { id, msg, join: o.join ?? false, sent: false, resolve, reject };
			if (o.timeout !== undefined) {
				p.timer = this.#clock.setTimeout(() => {
					this.#settle(id)?.reject(new RoomcastError('timeout', `no reply within ${o.timeout} ms`, { id }));
				}, o.timeout);
			}
			this.#pending.set(id, p);
			if (this.#link.state === 'open') p.sent = this.#link.send(msg);
		});
	}

	/** Removes a pending request and returns it (undefined when unknown). */
	#settle(id: number): Pending | undefined {
		const p = this.#pending.get(id);
		if (!p) return undefined;
		this.#pending.delete(id);
		if (p.timer !== undefined) this.#clock.clearTimeout(p.timer);
		return p;
	}

	#onState(info: StateInfo): void {
		if (info.state === 'open') {
			// Announced after the welcome is handled, so that listeners see the new
			// session, node and re-joins already sent.
			this.#openInfo = info;
			return;
		}
		this.#openInfo = undefined;
		for (const p of [...this.#pending.values()]) {
			if (info.state === 'closed') {
				this.#settle(p.id)?.reject(info.error ?? new RoomcastError('closed', 'the connection was closed'));
			} else if (p.join) {
				p.sent = false; // re-sent after the next welcome
			} else if (p.sent) {
				this.#settle(p.id)?.reject(
					new RoomcastError('disconnected', 'the connection dropped before the reply; the request may or may not have been applied', {
						id: p.id
					})
				);
			}
		}
		this.#sys.emit('state', info);
	}

	#onMessage(msg: ServerMessage<E, M>): void {
		this.#sys.emit('message', msg);
		switch (msg.type) {
			case 'welcome':
				return this.#onWelcome(msg);
			case 'ack': {
				const p = this.#settle(msg.id);
				if (p?.join) this.#onJoinAck(p.msg as JoinMessage, msg);
				p?.resolve(msg);
				return;
			}
			case 'history':
				this.#settle(msg.id)?.resolve(msg);
				return;
			case 'reply':
				this.#settle(msg.id)?.resolve(msg.data);
				return;
			case 'error': {
				const err = new RoomcastError(msg.code, msg.message || msg.code, msg.id === undefined ? {} : { id: msg.id });
				const p = msg.id === undefined ? undefined : this.#settle(msg.id);
				if (!p) return this.#sys.emit('error', err);
				if (p.join) {
					const room = (p.msg as { room: string }).room;
					// Stop re-joining a room the node refuses, unless a newer join is pending.
					const newer = [...this.#pending.values()].some((q) => q.join && (q.msg as { room?: string }).room === room);
					if (!newer) {
						this.#rooms.delete(room);
						this.#presence.delete(room);
					}
				}
				p.reject(err);
				return;
			}
			case 'event':
				return this.#onEvent(msg);
			case 'session:list':
			case 'session:connected':
			case 'session:disconnected':
			case 'session:updated': {
				// Ignore presence for rooms we left (a late delta would resurrect the list).
				if (!this.#rooms.has(msg.room)) return;
				this.#presence.apply(msg);
				const p = this.#presence.get(msg.room);
				if (msg.type !== 'session:list') this.#sys.emit(msg.type, msg);
				this.#sys.emit('presence', p);
				if (msg.type === 'session:list') {
					const waiters = this.#presenceWaiters.get(msg.room);
					if (waiters) {
						this.#presenceWaiters.delete(msg.room);
						waiters.forEach((w) => w(p));
					}
				}
				return;
			}
			default:
				return;
		}
	}

	#onWelcome(msg: WelcomeMessage<M>): void {
		this.#welcome = msg;
		for (const room of msg.rooms ?? []) {
			const r = this.#rooms.get(room);
			this.#rooms.set(room, { meta: r?.meta, auto: true });
		}
		this.#sys.emit('welcome', msg);
		// Re-join: reuse a pending join for the room, or start a background one.
		const pendingJoins = new Map<string, Pending>();
		for (const p of this.#pending.values()) {
			if (p.join) pendingJoins.set((p.msg as { room: string }).room, p);
		}
		for (const [room, r] of this.#rooms) {
			if (r.auto) {
				const p = pendingJoins.get(room);
				if (p) this.#settle(p.id)?.resolve(undefined);
				continue;
			}
			if (pendingJoins.has(room)) continue;
			const msg: ClientMessage = { type: 'join', room };
			if (r.meta !== undefined) msg.meta = r.meta;
			this.#addSince(msg);
			this.#request(msg, { join: true }).catch((err: RoomcastError) => {
				this.#sys.emit(
					'error',
					new RoomcastError(err.code, `re-join of ${room} failed: ${err.message}`, err.id === undefined ? {} : { id: err.id })
				);
			});
		}
		// Send what waited for the connection, joins first, in order.
		const unsent = [...this.#pending.values()].filter((p) => !p.sent).sort((a, b) => Number(b.join) - Number(a.join) || a.id - b.id);
		for (const p of unsent) {
			if (p.join) this.#addSince(p.msg);
			p.sent = this.#link.send(p.msg);
		}
		const open = this.#openInfo;
		this.#openInfo = undefined;
		if (open) this.#sys.emit('state', open);
	}

	/**
	 * A join's ack sets the room's position (seq and epoch of a room with
	 * history), except after a successful recovery: then `since` stands until
	 * the replayed events move it.
	 */
	#onJoinAck(join: JoinMessage, ack: AckMessage): void {
		const room = join.room;
		if (!this.#rooms.has(room)) return; // left meanwhile
		if (ack.recovered !== true) {
			if (typeof ack.seq === 'number') {
				const pos: HistoryPosition = { seq: ack.seq };
				if (ack.epoch !== undefined) pos.epoch = ack.epoch;
				this.#positions.set(room, pos);
			} else if (join.since) {
				this.#positions.delete(room); // the room keeps no history (any more)
			}
		}
		if (join.since && typeof ack.recovered === 'boolean') {
			this.#sys.emit('recovered', { room, recovered: ack.recovered, position: this.#positions.get(room) });
		}
	}

	#onEvent(msg: EventMessage<E>): void {
		if (msg.room !== undefined && typeof msg.seq === 'number') {
			const last = this.#positions.get(msg.room);
			// Safety net: never deliver an event twice (same epoch, not above the position).
			if (last && last.epoch === msg.epoch && msg.seq <= last.seq) return;
			const pos: HistoryPosition = { seq: msg.seq };
			if (msg.epoch !== undefined) pos.epoch = msg.epoch;
			this.#positions.set(msg.room, pos);
		}
		const ctx: EventContext = {};
		if (msg.room !== undefined) ctx.room = msg.room;
		if (msg.from !== undefined) ctx.from = msg.from;
		if (msg.seq !== undefined) ctx.seq = msg.seq;
		if (msg.epoch !== undefined) ctx.epoch = msg.epoch;
		this.#sys.emit('event', msg);
		for (const fn of [...(this.#listeners.get(msg.event) ?? [])]) call(fn, msg.data, ctx);
		const all = this.#listeners.get('*');
		if (all) {
			const c = { ...ctx, event: msg.event };
			for (const fn of [...all]) call(fn, msg.data, c);
		}
	}
}

function call(fn: (data: never, ctx: never) => void, data: unknown, ctx: unknown): void {
	try {
		(fn as (d: unknown, c: unknown) => void)(data, ctx);
	} catch (err) {
		queueMicrotask(() => {
			throw err;
		});
	}
}

/** Marks a promise as handled (no unhandled-rejection warning) while keeping it rejectable for awaiting callers. */
function quiet<T>(p: Promise<T>): Promise<T> {
	p.catch(() => {});
	return p;
}

/** Builds the link for `options`: a SharedWorker port when asked and possible, else a direct socket. */
export function createLink(options: ClientOptions): Link {
	let mint = options.mint;
	if (!mint && options.action !== undefined) {
		const action = options.action;
		const init = options.actionInit;
		mint = () => fetchActionUrl(action, init);
	}
	const connOpts: ConnectionOptions = { ...options };
	if (mint) connOpts.mint = mint;
	if (options.sharedWorker && typeof (globalThis as { SharedWorker?: unknown }).SharedWorker === 'function') {
		try {
			const worker = options.sharedWorker();
			return new FallbackLink(worker, connOpts, {
				clock: options.clock,
				timeout: options.sharedWorkerTimeout,
				direct: () => new Connection(connOpts)
			});
		} catch {
			// Fall back to a direct socket (e.g. a CSP forbids workers).
		}
	}
	return new Connection(connOpts);
}
