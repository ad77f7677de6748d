import { randomBytes } from 'node:crypto';
import { connect, headers as natsHeaders, type ConnectionOptions, type Msg, type NatsConnection, type Subscription } from 'nats';
import type { EventMap, Meta } from '@roomcast/client';
import { durationMs } from './duration.js';
import { decodeData, decodeJson, encodeData, encodeJson, type AuthRequestBody, type CloseEvent, type ConnectEvent, type ErrorEvent } from './events.js';
import { guardAnswer, guardRequest, type Guard } from './guard.js';
import { CLOSE_SERVICE_RESTART, RoomcastServerError, RoomcastSocket, checkRoom, type SocketHost } from './socket.js';

/** Where the NATS connection comes from: a connection (yours: not closed by `close()`), a promise of one, server URL(s) or nats.js options. */
export type NatsSource = NatsConnection | Promise<NatsConnection> | string | string[] | ConnectionOptions;

export interface Logger {
	warn(msg: string, ...rest: unknown[]): void;
	error(msg: string, ...rest: unknown[]): void;
}

export interface RoomcastServerOptions {
	/**
	 * NATS: the same one the nodes use. Default: `ROOMCAST_NATS` from the
	 * environment, else `nats://127.0.0.1:4222` (a laptop node's embedded NATS).
	 * Connected lazily, on the first `use()` or `continuous()`.
	 */
	nats?: NatsSource;
	/** Subject prefix of the nodes. Default "rc". */
	prefix?: string;
	/**
	 * Where browsers reach the nodes, e.g. "wss://rt.example.com": `use()`
	 * returns absolute URLs on it. Default: none, URLs stay relative
	 * (`/_/connect/<key>`), for nodes on the page's own origin (a load
	 * balancer route, or the Vite plugin in development).
	 */
	publicUrl?: string | URL;
	/** Default key lifetime of `use()`: a duration ("2m", "90s") or seconds. Default "2m". */
	ttl?: string | number;
	/** Slack (ms) after a key's TTL before its never-redeemed socket is closed with 4001. Default 2 000. */
	expiryGrace?: number;
	/** How long (ms) `socket.close()` waits for the node's close event before firing `close` anyway. Default 5 000. */
	closeTimeout?: number;
	/** Deadline (ms) of `rc.keys.mint` and `rc.control.join|leave` requests. Default 5 000. */
	requestTimeout?: number;
	/** Prefix of the NATS queue groups of `continuous()` routes and guards. Default "roomcast". */
	queue?: string;
	/**
	 * One instance per id and process: creating another with the same id
	 * closes the previous one (1012 to its sessions), which is what Vite's
	 * re-run of a module after an edit needs. Default "default".
	 */
	id?: string;
	/** Process events that trigger `close()` (graceful shutdown). Default ["sveltekit:shutdown"] (adapter-node); false: none. */
	shutdownOn?: string[] | false;
	/** Default: console. */
	logger?: Logger;
}

/** Claims of a one-time key (DESIGN.md "Connecting"). */
export interface UseOptions<M = Meta> {
	/** The user id (room-name characters; put display names in meta). Default: `event.locals.user` (a string, or its `id`). */
	user?: string;
	/** Session meta shown to peers in presence (≤ 4 KiB of JSON). */
	meta?: M;
	/** Rooms joined on connect. */
	rooms?: string[];
	/** Room patterns the session may join and publish to: "chat.*", "dm.>". */
	allow?: string[];
	/** Key lifetime: a duration ("2m") or seconds. Default: the instance's `ttl`. */
	ttl?: string | number;
}

/** The part of SvelteKit's RequestEvent that `use()` reads. */
export interface RequestEventLike {
	locals?: unknown;
}

export type SocketHandler<E extends EventMap, M> = (socket: RoomcastSocket<E, M>) => unknown;

export interface ContinuousOptions<M = Meta> {
	/**
	 * Answers `rc.auth.connect` for this path: the route must be configured
	 * with `auth: hook` on the nodes. See {@link Guard}.
	 */
	guard?: Guard<M>;
}

export interface Minted {
	/** `/_/connect/<key>`, or absolute on `publicUrl`. */
	url: string;
	key: string;
	session: string;
	expires_at: string;
}

export interface KickOptions {
	session?: string;
	user?: string;
	/** Default 4003 on the node. */
	code?: number;
	reason?: string;
}

export interface CloseOptions {
	/** Close code for the sessions this replica owns. Default 1012 (service restart: clients reconnect at once). */
	code?: number;
	reason?: string;
	/** How long (ms) to wait for the nodes to confirm the closes. Default 2 000. */
	timeout?: number;
}

interface Route<E extends EventMap, M> {
	path: string;
	handler: SocketHandler<E, M>;
	guard: Guard<M> | undefined;
	subs: Subscription[];
}

const REGISTRY = Symbol.for('roomcast.sveltekit.instances');

function registry(): Map<string, Roomcast<never, never>> {
	const g = globalThis as unknown as Record<symbol, Map<string, Roomcast<never, never>> | undefined>;
	return (g[REGISTRY] ??= new Map());
}

/** A session id: 22 chars of base64url (DESIGN.md: [A-Za-z0-9_-:@=], no dots). */
export function newSessionId(): string {
	return randomBytes(16).toString('base64url');
}

/** "/chat" → a queue-group token that is unique per path. */
function pathToken(path: string): string {
	const safe = path.replace(/[^A-Za-z0-9_-]+/g, '_').replace(/^_+|_+$/g, '') || 'root';
	let h = 0x811c9dc5;
	for (let i = 0; i < path.length; i++) h = Math.imul(h ^ path.charCodeAt(i), 0x01000193) >>> 0;
	return `${safe}-${h.toString(36)}`;
}

/** The user id SvelteKit's `event.locals` carries, if any: `locals.user` as a string, or its `id`. */
export function userFromLocals(locals: unknown): string | undefined {
	const u = (locals as { user?: unknown } | undefined)?.user;
	if (typeof u === 'string' && u !== '') return u;
	if (u && typeof u === 'object') {
		const id = (u as { id?: unknown }).id;
		if (typeof id === 'string' || typeof id === 'number') return String(id);
	}
	return undefined;
}

/**
 * roomcast for a SvelteKit back-end: per-request sockets with {@link use},
 * long-lived routes with {@link continuous}, all over NATS, so the handler
 * runs in whichever replica minted the key (or took the route's session) while
 * the socket lives on an edge node. Build it with {@link createRoomcast}.
 */
export class Roomcast<E extends EventMap = EventMap, M = Meta> {
	readonly prefix: string;
	readonly id: string;
	#opts: RoomcastServerOptions;
	#log: Logger;
	#nc: NatsConnection | undefined;
	#ownsNc = false;
	#starting: Promise<NatsConnection> | undefined;
	#subs: Subscription[] = [];
	#sendAll: Subscription | undefined;
	#sockets = new Map<string, RoomcastSocket<E, M>>();
	#sendSubs = new Map<string, Subscription>();
	#expiry = new Map<string, ReturnType<typeof setTimeout>>();
	#routes = new Map<string, Route<E, M>>();
	#closed = false;
	#closing: Promise<void> | undefined;
	#retry: ReturnType<typeof setTimeout> | undefined;
	#retries = 0;
	#offShutdown: (() => void) | undefined;
	#host: SocketHost;

	constructor(options: RoomcastServerOptions = {}) {
		this.#opts = options;
		this.prefix = options.prefix ?? 'rc';
		this.id = options.id ?? 'default';
		this.#log = options.logger ?? console;
		const self = this;
		this.#host = {
			prefix: this.prefix,
			closeTimeout: options.closeTimeout ?? 5_000,
			requestTimeout: options.requestTimeout ?? 5_000,
			publish: (subject, data, hdrs) => self.#publish(subject, data, hdrs),
			request: (subject, body, timeout) => self.#request(subject, body, timeout),
			kick: (session, code, reason) => self.#publish(`${self.prefix}.control.kick`, { session, code, reason }),
			release: (id) => self.#release(id),
			report: (err, where) => self.#log.error(`roomcast: ${where} threw`, err)
		};
		const shutdownOn = options.shutdownOn ?? ['sveltekit:shutdown'];
		if (shutdownOn && typeof process !== 'undefined' && typeof process.on === 'function') {
			const onShutdown = () => void this.close();
			for (const ev of shutdownOn) process.on(ev as 'beforeExit', onShutdown);
			this.#offShutdown = () => {
				for (const ev of shutdownOn) process.off(ev as 'beforeExit', onShutdown);
			};
		}
	}

	/** The sockets this replica owns: connecting and open ones. */
	get sockets(): ReadonlyMap<string, RoomcastSocket<E, M>> {
		return this.#sockets;
	}

	/** Connects to NATS and subscribes (idempotent); `use()` and `continuous()` call it. */
	start(): Promise<NatsConnection> {
		if (this.#closed) return Promise.reject(new RoomcastServerError('closed', 'this roomcast instance is closed'));
		if (!this.#starting) {
			this.#starting = this.#start().catch((err: unknown) => {
				this.#starting = undefined;
				throw err;
			});
		}
		return this.#starting;
	}

	/** The NATS connection (connecting first if needed). */
	connection(): Promise<NatsConnection> {
		return this.start();
	}

	/**
	 * A per-request socket, as in sveltekit-websockets: mints a one-time key for
	 * a pre-assigned session id and returns `{ url }` for the browser. `handler`
	 * runs at once with the socket `CONNECTING` (what it sends is queued), `open`
	 * fires when the browser connects; if the key is not redeemed within its TTL,
	 * `close` fires with 4001 and everything is released.
	 *
	 * ```ts
	 * export const actions = {
	 *   ws: (event) => roomcast.use(event, (socket) => {
	 *     socket.send('Connected!');
	 *     socket.addEventListener('message', (m) => console.log('Client says:', m.data));
	 *   })
	 * };
	 * ```
	 */
	async use(event: RequestEventLike | undefined, handler: SocketHandler<E, M>, options: UseOptions<M> = {}): Promise<{ url: string }> {
		const nc = await this.start();
		const ttl = options.ttl ?? this.#opts.ttl ?? '2m';
		const ttlMs = durationMs(ttl);
		const id = newSessionId();
		const user = options.user ?? userFromLocals(event?.locals) ?? '';
		const socket = new RoomcastSocket<E, M>(this.#host, { id, kind: 'use', user, meta: (options.meta ?? {}) as M, route: '' });
		this.#sockets.set(id, socket);
		// Subscribed before the mint request goes out on the same connection, so
		// the server has it before any browser can hold the key.
		this.#sendSubs.set(
			id,
			nc.subscribe(`${this.prefix}.send.${id}`, {
				callback: (err, msg) => {
					if (!err) socket._message(msg.headers?.get('Rc-Event') || 'message', decodeData(msg.data), msg.headers?.get('Rc-User') ?? '');
				}
			})
		);
		this.#runHandler(handler, socket);
		let minted: Minted;
		try {
			minted = await this.#mint({ user, meta: options.meta, rooms: options.rooms, allow: options.allow, session: id, ttl });
		} catch (err) {
			const e = err as RoomcastServerError;
			socket._error('mint_failed', e.message, err);
			socket._closed(1011, `no key: ${e.message}`, false);
			throw err;
		}
		if (this.#sockets.get(id) === socket && socket._pending) {
			const t = setTimeout(() => {
				this.#expiry.delete(id);
				socket._expire();
			}, ttlMs + (this.#opts.expiryGrace ?? 2_000));
			t.unref?.();
			this.#expiry.set(id, t);
		}
		return { url: minted.url };
	}

	/**
	 * Mints a one-time key without a handler (`rc.keys.mint`): for sessions no
	 * TypeScript code needs to own, e.g. {@link createRoomcastHandle}'s.
	 */
	async mint(options: UseOptions<M> & { session?: string } = {}): Promise<Minted> {
		await this.start();
		return this.#mint({ ...options, ttl: options.ttl ?? this.#opts.ttl ?? '2m' });
	}

	/**
	 * Takes every session that connects on `path` (a route in the nodes'
	 * config), each in exactly one replica (NATS queue group), and runs
	 * `handler` with its socket; `open` fires right after. With `guard`, this
	 * replica group also answers the route's `rc.auth.connect` (`auth: hook`).
	 * Returns a function that stops taking new sessions.
	 */
	continuous(path: string, handler: SocketHandler<E, M>, options: ContinuousOptions<M> = {}): () => void {
		if (this.#closed) throw new RoomcastServerError('closed', 'this roomcast instance is closed');
		if (this.#routes.has(path)) throw new RoomcastServerError('bad_request', `continuous("${path}") is registered already`);
		const route: Route<E, M> = { path, handler, guard: options.guard, subs: [] };
		this.#routes.set(path, route);
		if (this.#nc) this.#subscribeRoute(this.#nc, route);
		else this.#startInBackground();
		return () => {
			route.subs.forEach((s) => s.unsubscribe());
			route.subs = [];
			this.#routes.delete(path);
		};
	}

	/** Publishes `event` to every member of `room` (`rc.room.<room>`), as the server. */
	async publish<K extends keyof E & string>(room: string, event: K, data: E[K]): Promise<void> {
		checkRoom(room);
		await this.start();
		this.#publish(`${this.prefix}.room.${room}`, data, { 'Rc-Event': event });
	}

	/** Sends `event` to one session (`rc.session.<id>`), on whichever node and replica. */
	async sendTo<K extends keyof E & string>(session: string, event: K, data: E[K]): Promise<void> {
		await this.start();
		this.#publish(`${this.prefix}.session.${session}`, data, { 'Rc-Event': event });
	}

	/** Sends `event` to every session of `user` (`rc.user.<user>`). */
	async sendToUser<K extends keyof E & string>(user: string, event: K, data: E[K]): Promise<void> {
		checkRoom(user);
		await this.start();
		this.#publish(`${this.prefix}.user.${user}`, data, { 'Rc-Event': event });
	}

	/** Closes matching sessions on every node (`rc.control.kick`). */
	async kick(o: KickOptions): Promise<void> {
		if (!o.session && !o.user) throw new RoomcastServerError('bad_request', 'kick needs a session or a user');
		await this.start();
		this.#publish(`${this.prefix}.control.kick`, o);
	}

	/**
	 * Graceful shutdown: stops taking new sessions, closes the ones this
	 * replica owns with 1012 (their browsers reconnect at once, to a live
	 * replica), waits for the nodes to confirm (≤ `timeout`), then lets go of
	 * NATS (drained when this instance connected it). Idempotent.
	 */
	close(options: CloseOptions = {}): Promise<void> {
		this.#closing ??= this.#close(options);
		return this.#closing;
	}

	// ── internals ────────────────────────────────────────────────────────

	async #start(): Promise<NatsConnection> {
		const src = this.#opts.nats ?? process.env.ROOMCAST_NATS ?? 'nats://127.0.0.1:4222';
		let nc: NatsConnection;
		if (typeof src === 'string' || Array.isArray(src) || !isConnectionLike(src)) {
			const opts: ConnectionOptions =
				typeof src === 'string' || Array.isArray(src) ? { servers: src } : (src as ConnectionOptions);
			try {
				nc = await connect({ name: 'roomcast-sveltekit', maxReconnectAttempts: -1, ...opts });
			} catch (err) {
				throw new RoomcastServerError(
					'unavailable',
					`cannot reach NATS at ${String(opts.servers ?? 'the default server')}: start a roomcast node (go run ./cmd/node) or set ROOMCAST_NATS (${(err as Error).message})`
				);
			}
			this.#ownsNc = true;
		} else {
			nc = await src;
		}
		if (this.#closed) {
			if (this.#ownsNc) await nc.close();
			throw new RoomcastServerError('closed', 'this roomcast instance is closed');
		}
		this.#nc = nc;
		const previous = registry().get(this.id);
		registry().set(this.id, this as unknown as Roomcast<never, never>);
		if (previous && previous !== (this as unknown)) void previous.close();
		const p = this.prefix;
		this.#subs.push(
			nc.subscribe(`${p}.events.connect`, { callback: (err, msg) => !err && this.#onConnect(msg) }),
			nc.subscribe(`${p}.events.close`, { callback: (err, msg) => !err && this.#onClose(msg) }),
			nc.subscribe(`${p}.events.error`, { callback: (err, msg) => !err && this.#onError(msg) })
		);
		for (const route of this.#routes.values()) this.#subscribeRoute(nc, route);
		// Subscribed for sure before the first key exists (nodes publish events
		// to listeners known when the event happens).
		await nc.flush();
		return nc;
	}

	/** continuous() before any use(): connect now, and keep trying while NATS is away. */
	#startInBackground(): void {
		if (this.#retry !== undefined) return;
		this.start().catch((err: Error) => {
			if (this.#closed || this.#routes.size === 0) return;
			// Said once, then once a minute.
			if (this.#retries++ % 30 === 0) this.#log.warn(`roomcast: ${err.message}; retrying every 2 s`);
			this.#retry = setTimeout(() => {
				this.#retry = undefined;
				this.#startInBackground();
			}, 2_000);
			this.#retry.unref?.();
		});
	}

	#subscribeRoute(nc: NatsConnection, route: Route<E, M>): void {
		const p = this.prefix;
		const token = pathToken(route.path);
		const queue = this.#opts.queue ?? 'roomcast';
		if (!this.#sendAll) {
			// Client sends of continuous sessions: every replica sees them and keeps
			// those it owns. A per-session subscription made on the connect event
			// could miss a message the browser sends right after its welcome.
			this.#sendAll = nc.subscribe(`${p}.send.*`, {
				callback: (err, msg) => {
					if (err) return;
					const socket = this.#sockets.get(msg.subject.slice(p.length + 6));
					if (socket?.kind === 'continuous') {
						socket._message(msg.headers?.get('Rc-Event') || 'message', decodeData(msg.data), msg.headers?.get('Rc-User') ?? '');
					}
				}
			});
		}
		route.subs.push(
			nc.subscribe(`${p}.events.connect`, {
				queue: `${queue}.route.${token}`,
				callback: (err, msg) => {
					if (err) return;
					const ev = decodeJson<ConnectEvent<M>>(msg.data);
					if (!ev || ev.route !== route.path || typeof ev.session !== 'string' || this.#sockets.has(ev.session)) return;
					const socket = new RoomcastSocket<E, M>(this.#host, {
						id: ev.session,
						kind: 'continuous',
						user: ev.user ?? '',
						meta: ev.meta,
						route: route.path
					});
					this.#sockets.set(ev.session, socket);
					this.#runHandler(route.handler, socket);
					socket._open(ev);
				}
			})
		);
		if (route.guard) {
			const guard = route.guard;
			route.subs.push(
				nc.subscribe(`${p}.auth.connect`, {
					queue: `${queue}.auth.${token}`,
					callback: (err, msg) => {
						if (err) return;
						const body = decodeJson<AuthRequestBody>(msg.data);
						if (!body || body.path !== route.path) return;
						void this.#answerGuard(guard, body, msg);
					}
				})
			);
		}
	}

	async #answerGuard(guard: Guard<M>, body: AuthRequestBody, msg: Msg): Promise<void> {
		try {
			const result = await guard(guardRequest(body));
			msg.respond(encodeJson(guardAnswer(result)));
		} catch (err) {
			this.#log.error(`roomcast: the guard of ${body.path} threw; the node answers 503`, err);
		}
	}

	#runHandler(handler: SocketHandler<E, M>, socket: RoomcastSocket<E, M>): void {
		const fail = (err: unknown) => {
			this.#log.error(`roomcast: the handler of session ${socket.id} threw`, err);
			socket._error('handler', err instanceof Error ? err.message : String(err), err);
		};
		try {
			const r = handler(socket) as unknown;
			if (r && typeof (r as Promise<unknown>).then === 'function') (r as Promise<unknown>).then(undefined, fail);
		} catch (err) {
			fail(err);
		}
	}

	#onConnect(msg: Msg): void {
		const ev = decodeJson<ConnectEvent<M>>(msg.data);
		if (!ev || typeof ev.session !== 'string') return;
		this.#sockets.get(ev.session)?._open(ev);
	}

	#onClose(msg: Msg): void {
		const ev = decodeJson<CloseEvent>(msg.data);
		if (!ev || typeof ev.session !== 'string') return;
		this.#sockets.get(ev.session)?._closed(Number(ev.code) || 1005, ev.reason ?? '', true);
	}

	#onError(msg: Msg): void {
		const ev = decodeJson<ErrorEvent>(msg.data);
		if (!ev || typeof ev.session !== 'string') return;
		this.#sockets.get(ev.session)?._error(String(ev.code ?? 'error'), String(ev.message ?? ''));
	}

	#release(id: string): void {
		this.#sockets.delete(id);
		this.#sendSubs.get(id)?.unsubscribe();
		this.#sendSubs.delete(id);
		const t = this.#expiry.get(id);
		if (t !== undefined) clearTimeout(t);
		this.#expiry.delete(id);
	}

	async #mint(claims: UseOptions<M> & { session?: string }): Promise<Minted> {
		durationMs(claims.ttl ?? '2m');
		const answer = (await this.#request(`${this.prefix}.keys.mint`, claims, this.#host.requestTimeout)) as
			| (Partial<Minted> & { error?: { code?: string; message?: string } })
			| undefined;
		if (!answer || typeof answer !== 'object') throw new RoomcastServerError('unavailable', 'rc.keys.mint answered garbage');
		if (answer.error) throw new RoomcastServerError(answer.error.code ?? 'error', answer.error.message ?? 'mint failed');
		if (typeof answer.url !== 'string' || typeof answer.session !== 'string') throw new RoomcastServerError('unavailable', 'rc.keys.mint answered without url');
		return {
			url: this.#publicUrl(answer.url),
			key: answer.key ?? '',
			session: answer.session,
			expires_at: answer.expires_at ?? ''
		};
	}

	#publicUrl(url: string): string {
		const base = this.#opts.publicUrl;
		if (base === undefined) return url;
		const u = new URL(url, base);
		if (u.protocol === 'http:') u.protocol = 'ws:';
		if (u.protocol === 'https:') u.protocol = 'wss:';
		return u.toString();
	}

	#publish(subject: string, data: unknown, hdrs?: Record<string, string>): void {
		const nc = this.#nc;
		if (!nc || nc.isClosed()) {
			this.#log.warn(`roomcast: dropped a publish to ${subject}: not connected to NATS`);
			return;
		}
		const body = hdrs ? encodeData(data) : encodeJson(data);
		if (!hdrs) return nc.publish(subject, body);
		const h = natsHeaders();
		for (const [k, v] of Object.entries(hdrs)) h.set(k, v);
		nc.publish(subject, body, { headers: h });
	}

	async #request(subject: string, body: unknown, timeout: number): Promise<unknown> {
		const nc = await this.start();
		let msg: Msg;
		try {
			msg = await nc.request(subject, encodeJson(body), { timeout });
		} catch (err) {
			const code = (err as { code?: string }).code;
			if (code === '503') throw new RoomcastServerError('unavailable', `nobody answers ${subject}: is a roomcast node running on this NATS?`);
			if (code === 'TIMEOUT') throw new RoomcastServerError('timeout', `no answer on ${subject} within ${timeout} ms`);
			throw new RoomcastServerError('unavailable', `${subject}: ${(err as Error).message}`);
		}
		return decodeJson(msg.data);
	}

	async #close(o: CloseOptions): Promise<void> {
		this.#closed = true;
		this.#offShutdown?.();
		if (this.#retry !== undefined) clearTimeout(this.#retry);
		const starting = this.#starting;
		if (starting) await starting.catch(() => undefined);
		// Stop taking sessions first, so that reconnecting browsers land elsewhere.
		for (const r of this.#routes.values()) r.subs.forEach((s) => s.unsubscribe());
		this.#routes.clear();
		const code = o.code ?? CLOSE_SERVICE_RESTART;
		const reason = o.reason ?? 'service restart';
		for (const s of [...this.#sockets.values()]) {
			if (s.readyState === 1) s.close(code, reason);
			else if (s.readyState === 0) s._closed(code, reason, false);
			else if (s._pending) this.#release(s.id);
		}
		const end = Date.now() + (o.timeout ?? 2_000);
		while (this.#sockets.size > 0 && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
		for (const s of [...this.#sockets.values()]) s._closed(code, reason, false);
		for (const s of this.#subs) s.unsubscribe();
		this.#subs = [];
		this.#sendAll?.unsubscribe();
		this.#sendAll = undefined;
		const nc = this.#nc;
		if (registry().get(this.id) === (this as unknown)) registry().delete(this.id);
		if (nc && this.#ownsNc && !nc.isClosed()) await nc.drain().catch(() => nc.close());
		else if (nc && !nc.isClosed()) await nc.flush().catch(() => undefined);
	}
}

function isConnectionLike(v: unknown): v is NatsConnection | Promise<NatsConnection> {
	return (
		typeof v === 'object' &&
		v !== null &&
		(typeof (v as Promise<unknown>).then === 'function' || typeof (v as NatsConnection).subscribe === 'function')
	);
}

/** Creates a {@link Roomcast}; see {@link RoomcastServerOptions}. Nothing connects until the first use. */
export function createRoomcast<E extends EventMap = EventMap, M = Meta>(options: RoomcastServerOptions = {}): Roomcast<E, M> {
	return new Roomcast<E, M>(options);
}
