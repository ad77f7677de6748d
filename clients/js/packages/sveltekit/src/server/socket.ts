import { isValidRoom, type EventMap, type Meta } from '@roomcast/client';
import type { ConnectEvent } from './events.js';

/** Why a server-side call failed: `bad_request`, `forbidden`, `not_found`, `timeout`, `unavailable`, `closed`, or a node's code. */
export class RoomcastServerError extends Error {
	readonly code: string;
	constructor(code: string, message: string) {
		super(message);
		this.name = 'RoomcastServerError';
		this.code = code;
	}
}

/** Close code fired on a `use()` socket whose key was not redeemed before its TTL (DESIGN.md: 4001 key invalid/expired/used). */
export const CLOSE_KEY_EXPIRED = 4001;
/** Close code sent to the sessions of a replica that shuts down gracefully (service restart: clients reconnect at once). */
export const CLOSE_SERVICE_RESTART = 1012;

export interface SocketOpenEvent<E extends EventMap = EventMap, M = Meta> {
	type: 'open';
	target: RoomcastSocket<E, M>;
}

/** A client `send`: `data` is the value the browser passed, `event` its event name (default "message"). */
export interface SocketMessageEvent<E extends EventMap = EventMap, M = Meta> {
	type: 'message';
	data: E[keyof E & string];
	event: keyof E & string;
	/** The sender's user id (the session's), from the node's `Rc-User` header. */
	user: string;
	target: RoomcastSocket<E, M>;
}

export interface SocketCloseEvent<E extends EventMap = EventMap, M = Meta> {
	type: 'close';
	/** The close code: the node's (1000, 1001, 1006, 4009, …), 4001 for a key never redeemed, or the one given to `close()`. */
	code: number;
	reason: string;
	/** True when the node reported the close (`rc.events.close`); false when decided here (expiry, close timeout). */
	wasClean: boolean;
	target: RoomcastSocket<E, M>;
}

export interface SocketErrorEvent<E extends EventMap = EventMap, M = Meta> {
	type: 'error';
	/** The node's error code (`rc.events.error`) or a local one (`mint_failed`, `handler`). */
	code: string;
	message: string;
	error?: unknown;
	target: RoomcastSocket<E, M>;
}

export interface SocketEventMap<E extends EventMap = EventMap, M = Meta> {
	open: SocketOpenEvent<E, M>;
	message: SocketMessageEvent<E, M>;
	close: SocketCloseEvent<E, M>;
	error: SocketErrorEvent<E, M>;
}

type Listener<T> = ((ev: T) => void) | { handleEvent(ev: T): void };

export interface ListenerOptions {
	once?: boolean;
	signal?: AbortSignal;
}

/** What a socket needs from its {@link Roomcast}: NATS and bookkeeping. @internal */
export interface SocketHost {
	readonly prefix: string;
	readonly closeTimeout: number;
	readonly requestTimeout: number;
	publish(subject: string, data: unknown, headers?: Record<string, string>): void;
	request(subject: string, body: unknown, timeout: number): Promise<unknown>;
	kick(session: string, code: number, reason: string): void;
	release(id: string): void;
	report(err: unknown, where: string): void;
}

/** How a socket came to be: `use()` (per-request key) or `continuous()` (a configured route). */
export type SocketKind = 'use' | 'continuous';

export interface SocketInit<M> {
	id: string;
	kind: SocketKind;
	user: string;
	meta: M;
	route: string;
}

const MAX_QUEUED = 1000;

function validCloseCode(code: number): boolean {
	return code === 1000 || code === 1001 || code === 1008 || code === 1011 || code === 1012 || (code >= 3000 && code <= 4999);
}

/**
 * A browser session as the app back-end sees it, shaped like the browser's
 * WebSocket (`send`, `close`, `addEventListener`, `readyState`) plus roomcast's
 * `id`, `user`, `meta`, `join`, `leave` and `publish`. The socket itself lives
 * on an edge node; this object talks to it over NATS:
 *
 * - `send(data)` publishes `rc.session.<id>` (event "message"); `emit(event, data)` names the event.
 * - client `send` frames arrive on `rc.send.<id>` as `message` events.
 * - `close(code, reason)` publishes `rc.control.kick`.
 * - `join` / `leave` request `rc.control.join` / `rc.control.leave`.
 * - `publish(room, event, data)` publishes `rc.room.<room>` with `Rc-From: <id>`.
 *
 * A `use()` socket starts `CONNECTING`: what is sent (and joined) before the
 * browser redeems the key is queued and delivered on `open`. Unlike the
 * browser's WebSocket, sending while connecting is fine.
 */
export class RoomcastSocket<E extends EventMap = EventMap, M = Meta> {
	static readonly CONNECTING = 0;
	static readonly OPEN = 1;
	static readonly CLOSING = 2;
	static readonly CLOSED = 3;
	readonly CONNECTING = 0;
	readonly OPEN = 1;
	readonly CLOSING = 2;
	readonly CLOSED = 3;

	/** The session id (pre-assigned for `use()`, the node's for `continuous()`). */
	readonly id: string;
	readonly kind: SocketKind;
	/** The continuous route path, "" for `use()` sockets. */
	readonly route: string;
	#user: string;
	#meta: M;
	#node = '';
	#remote = '';
	#state: 0 | 1 | 2 | 3;
	#host: SocketHost;
	#queue: Array<() => void> = [];
	#waiting: Array<(err: RoomcastServerError) => void> = [];
	#listeners = new Map<string, Array<{ fn: Listener<never>; once: boolean }>>();
	#closeTimer: ReturnType<typeof setTimeout> | undefined;
	/** Closed by the app before the key was redeemed: kick the session if it shows up. */
	#closedEarly: { code: number; reason: string } | undefined;

	onopen: ((ev: SocketOpenEvent<E, M>) => void) | null = null;
	onmessage: ((ev: SocketMessageEvent<E, M>) => void) | null = null;
	onclose: ((ev: SocketCloseEvent<E, M>) => void) | null = null;
	onerror: ((ev: SocketErrorEvent<E, M>) => void) | null = null;

	/** @internal Built by {@link Roomcast}. */
	constructor(host: SocketHost, init: SocketInit<M>, open = false) {
		this.#host = host;
		this.id = init.id;
		this.kind = init.kind;
		this.#user = init.user;
		this.#meta = init.meta;
		this.route = init.route;
		this.#state = open ? 1 : 0;
	}

	/** 0 CONNECTING, 1 OPEN, 2 CLOSING, 3 CLOSED. */
	get readyState(): 0 | 1 | 2 | 3 {
		return this.#state;
	}

	/** The session's user id ("" for anonymous). */
	get user(): string {
		return this.#user;
	}

	/** The session's meta (from the key's claims, the guard, or the connect event). */
	get meta(): M {
		return this.#meta;
	}

	/** The node holding the socket (known once open). */
	get node(): string {
		return this.#node;
	}

	/** The browser's address as the node saw it (known once open). */
	get remote(): string {
		return this.#remote;
	}

	/** Sends `data` (any JSON value) to the browser as event "message". Queued while connecting; dropped once closing. */
	send(data: unknown): void {
		this.emit('message' as keyof E & string, data as E[keyof E & string]);
	}

	/** Sends a named event to the browser (`rc.on(event, …)` there). */
	emit<K extends keyof E & string>(event: K, data: E[K]): void {
		this.#whenOpen(() => this.#host.publish(`${this.#host.prefix}.session.${this.id}`, data, { 'Rc-Event': event }));
	}

	/**
	 * Broadcasts to `room` (`rc.room.<room>`) as this session (`from` is its
	 * id); the session need not be in the room. Members, this session
	 * included, get it as a room event.
	 */
	publish<K extends keyof E & string>(room: string, event: K, data: E[K]): void {
		checkRoom(room);
		this.#host.publish(`${this.#host.prefix}.room.${room}`, data, { 'Rc-Event': event, 'Rc-From': this.id });
	}

	/**
	 * Joins the session to `room` from the back-end (`rc.control.join`; the
	 * room need not match the session's allow patterns: the back-end is
	 * trusted). Resolves when the node holding the session acknowledges;
	 * before `open` it waits for the connection. `meta` is the session's meta
	 * in that room's presence (default: the session's).
	 */
	join(room: string, meta?: M): Promise<void> {
		return this.#control('join', room, meta);
	}

	/** Takes the session out of `room` (`rc.control.leave`). */
	leave(room: string): Promise<void> {
		return this.#control('leave', room);
	}

	/**
	 * Closes the browser's socket with `code` (1000 by default; 3000–4999 for
	 * your own) through `rc.control.kick`. `close` fires when the node reports
	 * it (or after `closeTimeout`). Before `open`, the socket is closed here at
	 * once and the session is kicked if the browser redeems the key later.
	 */
	close(code = 1000, reason = ''): void {
		if (!validCloseCode(code)) throw new RoomcastServerError('bad_request', `close code ${code} is invalid: use 1000 or 3000–4999`);
		if (this.#state === 0) {
			this.#closedEarly = { code, reason };
			this.#finish(code, reason, false, false);
			return;
		}
		if (this.#state !== 1) return;
		this.#state = 2;
		this.#host.kick(this.id, code, reason);
		this.#closeTimer = setTimeout(() => this.#finish(code, reason, false), this.#host.closeTimeout);
		this.#closeTimer.unref?.();
	}

	addEventListener<K extends keyof SocketEventMap<E, M>>(type: K, fn: Listener<SocketEventMap<E, M>[K]>, opts: ListenerOptions | boolean = {}): void {
		const o = typeof opts === 'boolean' ? {} : opts;
		if (o.signal?.aborted) return;
		const list = this.#listeners.get(type) ?? [];
		if (list.some((l) => l.fn === fn)) return;
		list.push({ fn: fn as Listener<never>, once: o.once ?? false });
		this.#listeners.set(type, list);
		o.signal?.addEventListener('abort', () => this.removeEventListener(type, fn), { once: true });
	}

	removeEventListener<K extends keyof SocketEventMap<E, M>>(type: K, fn: Listener<SocketEventMap<E, M>[K]>): void {
		const list = this.#listeners.get(type);
		if (!list) return;
		const i = list.findIndex((l) => l.fn === fn);
		if (i >= 0) list.splice(i, 1);
	}

	// ── driven by Roomcast ───────────────────────────────────────────────

	/** @internal The node reported the session connected (or a client message proved it). */
	_open(ev?: ConnectEvent<M>): void {
		if (this.#closedEarly) {
			this.#host.kick(this.id, this.#closedEarly.code, this.#closedEarly.reason);
			this.#closedEarly = undefined;
			this.#host.release(this.id);
			return;
		}
		if (ev) {
			this.#node = ev.node ?? '';
			this.#remote = ev.remote ?? '';
			if (ev.user) this.#user = ev.user;
			if (ev.meta !== undefined && ev.meta !== null) this.#meta = ev.meta;
		}
		if (this.#state !== 0) return;
		this.#state = 1;
		const queued = this.#queue;
		this.#queue = [];
		this.#waiting = [];
		for (const f of queued) f();
		this.#dispatch('open', { type: 'open', target: this });
	}

	/** @internal A client `send` frame (rc.send.<id>). */
	_message(event: string, data: unknown, user: string): void {
		if (this.#state === 0) this._open();
		if (this.#state !== 1) return;
		this.#dispatch('message', {
			type: 'message',
			event: event as keyof E & string,
			data: data as E[keyof E & string],
			user,
			target: this
		});
	}

	/** @internal rc.events.close, or a local decision (expiry, shutdown). */
	_closed(code: number, reason: string, wasClean: boolean): void {
		this.#finish(code, reason, wasClean);
	}

	/** @internal rc.events.error, a failed mint, a throwing handler. */
	_error(code: string, message: string, error?: unknown): void {
		const ev: SocketErrorEvent<E, M> = { type: 'error', code, message, target: this };
		if (error !== undefined) ev.error = error;
		this.#dispatch('error', ev);
	}

	/** @internal The key's TTL passed: a socket still connecting never will (4001). */
	_expire(): void {
		if (this.#state === 0) {
			this.#finish(CLOSE_KEY_EXPIRED, 'the connection key expired before it was redeemed', false);
		} else if (this.#closedEarly) {
			this.#closedEarly = undefined;
			this.#host.release(this.id);
		}
	}

	/** @internal Whether the socket waits for the browser (connecting, or closed early and still registered). */
	get _pending(): boolean {
		return this.#state === 0 || this.#closedEarly !== undefined;
	}

	// ── internals ────────────────────────────────────────────────────────

	#finish(code: number, reason: string, wasClean: boolean, release = true): void {
		if (this.#state === 3) {
			// Closed early, then the node or the expiry confirms: just let go.
			if (release && !this.#closedEarly) this.#host.release(this.id);
			return;
		}
		this.#state = 3;
		if (this.#closeTimer !== undefined) clearTimeout(this.#closeTimer);
		this.#closeTimer = undefined;
		this.#queue = [];
		const waiting = this.#waiting;
		this.#waiting = [];
		waiting.forEach((w) => w(new RoomcastServerError('closed', `session ${this.id} closed (${code}) before the call was made`)));
		if (release) this.#host.release(this.id);
		this.#dispatch('close', { type: 'close', code, reason, wasClean, target: this });
	}

	#whenOpen(f: () => void): void {
		if (this.#state === 1) return f();
		if (this.#state === 0 && this.#queue.length < MAX_QUEUED) this.#queue.push(f);
	}

	#control(action: 'join' | 'leave', room: string, meta?: M): Promise<void> {
		try {
			checkRoom(room);
		} catch (err) {
			return Promise.reject(err);
		}
		const call = async () => {
			const body: Record<string, unknown> = { session: this.id, room };
			if (meta !== undefined) body.meta = meta;
			const answer = (await this.#host.request(`${this.#host.prefix}.control.${action}`, body, this.#host.requestTimeout)) as {
				error?: { code?: string; message?: string };
			} | null;
			if (answer && typeof answer === 'object' && answer.error) {
				throw new RoomcastServerError(answer.error.code ?? 'error', answer.error.message ?? `${action} failed`);
			}
		};
		if (this.#state === 1) return call();
		if (this.#state !== 0) return Promise.reject(new RoomcastServerError('closed', `session ${this.id} is closed`));
		return new Promise<void>((resolve, reject) => {
			if (this.#queue.length >= MAX_QUEUED) return reject(new RoomcastServerError('unavailable', 'too many calls queued before open'));
			this.#waiting.push(reject);
			this.#queue.push(() => void call().then(resolve, reject));
		});
	}

	#dispatch<K extends keyof SocketEventMap<E, M>>(type: K, ev: SocketEventMap<E, M>[K]): void {
		const prop = (this as unknown as Record<string, unknown>)[`on${type}`];
		if (typeof prop === 'function') this.#call(prop as (e: unknown) => void, ev, type);
		const list = this.#listeners.get(type);
		if (!list) return;
		for (const l of [...list]) {
			if (l.once) this.removeEventListener(type, l.fn as never);
			const fn = typeof l.fn === 'function' ? (l.fn as (e: unknown) => void) : (e: unknown) => (l.fn as { handleEvent(e: unknown): void }).handleEvent(e);
			this.#call(fn, ev, type);
		}
	}

	#call(fn: (e: unknown) => void, ev: unknown, type: string): void {
		try {
			const r = fn(ev) as unknown;
			if (r && typeof (r as Promise<unknown>).catch === 'function') (r as Promise<unknown>).catch((err) => this.#host.report(err, `${type} listener of session ${this.id}`));
		} catch (err) {
			this.#host.report(err, `${type} listener of session ${this.id}`);
		}
	}
}

export function checkRoom(room: string): void {
	if (!isValidRoom(room)) {
		throw new RoomcastServerError('bad_request', `room "${room}" is invalid: use 1–128 chars of [A-Za-z0-9_-:@=] in dot-separated tokens`);
	}
}
