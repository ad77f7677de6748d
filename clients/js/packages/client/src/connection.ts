import { fullJitter, type BackoffOptions } from './backoff.js';
import { systemClock, type Clock } from './clock.js';
import { Emitter } from './emitter.js';
import { closeCodeToError, FATAL_CLOSE_CODES, IMMEDIATE_CLOSE_CODES, RoomcastError } from './errors.js';
import type { ConnectionState, Link, LinkEvents, StateInfo } from './link.js';
import { encode, parseFrame, type ClientMessage, type WelcomeMessage } from './protocol.js';

/** The part of the browser WebSocket the client uses; a test double can implement it. */
export interface WebSocketLike {
	readonly readyState: number;
	onopen: ((ev: unknown) => void) | null;
	onmessage: ((ev: { data: unknown }) => void) | null;
	onclose: ((ev: { code: number; reason: string }) => void) | null;
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

export const browserWake: WakeSource = (wake) => {
	const g = globalThis as unknown as {
		addEventListener?: (t: string, f: () => void) => void;
		removeEventListener?: (t: string, f: () => void) => void;
		document?: {
			visibilityState?: string;
			addEventListener(t: string, f: () => void): void;
			removeEventListener(t: string, f: () => void): void;
		};
	};
	const offs: Array<() => void> = [];
	const online = () => wake();
	if (typeof g.addEventListener === 'function') {
		g.addEventListener('online', online);
		offs.push(() => g.removeEventListener?.('online', online));
	}
	const doc = g.document;
	if (doc && typeof doc.addEventListener === 'function') {
		const visible = () => {
			if (doc.visibilityState === 'visible') wake();
		};
		doc.addEventListener('visibilitychange', visible);
		offs.push(() => doc.removeEventListener('visibilitychange', visible));
	}
	return () => offs.forEach((f) => f());
};

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

type TimerName = 'retry' | 'connect' | 'ping' | 'pong';

const DEFAULT_PING = 25_000;
const DEFAULT_PONG = 10_000;
const DEFAULT_CONNECT = 15_000;

/** True for `/_/connect/<key>` and `/_/connect?key=` URLs: one-time keys. */
export function isOneTimeUrl(url: string): boolean {
	try {
		const p = new URL(url, 'http://x').pathname;
		return p === '/_/connect' || p.startsWith('/_/connect/');
	} catch {
		return false;
	}
}

/** Resolves `url` against `base` (or `location`) and maps http(s) to ws(s). */
export function toWebSocketUrl(url: string | URL, base?: string | URL): string {
	const loc = (globalThis as { location?: { href: string } }).location;
	const u = new URL(String(url), base === undefined ? loc?.href : String(base));
	if (u.protocol === 'http:') u.protocol = 'ws:';
	else if (u.protocol === 'https:') u.protocol = 'wss:';
	return u.toString();
}

/**
 * One reconnecting WebSocket to a roomcast node: full-jitter backoff that
 * never gives up, a fresh URL from `mint()` per attempt, immediate retry on
 * `online`/visible and on close 1001/1012, client pings with a pong deadline,
 * and fatal close codes surfaced as errors. It knows nothing of rooms: a
 * {@link RoomcastClient} re-joins them on each `welcome`.
 */
export class Connection implements Link {
	#opts: ConnectionOptions;
	#clock: Clock;
	#random: () => number;
	#fatal: readonly number[];
	#emitter = new Emitter<LinkEvents>();
	#state: ConnectionState = 'idle';
	#ws: WebSocketLike | undefined;
	/** Bumped per attempt and on close: callbacks of older sockets are ignored. */
	#gen = 0;
	#attempt = 0;
	/** Set after an immediate retry on 1001/1012, cleared by a welcome: a second drain in a row backs off. */
	#drained = false;
	/** A static one-time URL that got a welcome: it cannot be used again. */
	#spent = false;
	#pingMs: number;
	#timers: Partial<Record<TimerName, unknown>> = {};
	#unwake: (() => void) | undefined;

	constructor(opts: ConnectionOptions = {}) {
		this.#opts = opts;
		this.#clock = opts.clock ?? systemClock;
		this.#random = opts.random ?? Math.random;
		this.#fatal = opts.fatalCloseCodes ?? FATAL_CLOSE_CODES;
		this.#pingMs = opts.pingInterval ?? DEFAULT_PING;
	}

	get state(): ConnectionState {
		return this.#state;
	}

	/** Current reconnect attempt (0 after a welcome). */
	get attempt(): number {
		return this.#attempt;
	}

	on<K extends keyof LinkEvents>(name: K, fn: LinkEvents[K]): () => void {
		return this.#emitter.on(name, fn);
	}

	open(): void {
		if (this.#state === 'open' || this.#state === 'connecting' || this.#state === 'reconnecting') return;
		this.#attempt = 0;
		this.#drained = false;
		this.#spent = false;
		if (!this.#unwake) {
			const src = this.#opts.wake === undefined ? browserWake : this.#opts.wake;
			this.#unwake = src?.(() => this.wake());
		}
		void this.#connect();
	}

	/** Closes for good (until `open()`); no reconnect. */
	close(code = 1000, reason = 'client closed'): void {
		this.#gen++;
		this.#clearTimers();
		const ws = this.#detach();
		try {
			ws?.close(code, reason);
		} catch {
			// already closing
		}
		this.#unwake?.();
		this.#unwake = undefined;
		if (this.#state !== 'closed') this.#setState({ state: 'closed', code, reason });
	}

	send(msg: ClientMessage): boolean {
		if (this.#state !== 'open' || !this.#ws) return false;
		try {
			this.#ws.send(encode(msg));
			return true;
		} catch {
			return false;
		}
	}

	wake(): void {
		if (this.#state === 'reconnecting') {
			this.#clear('retry');
			void this.#connect();
		} else if (this.#state === 'open') {
			this.#ping();
		}
	}

	/** One attempt; `cause` (close code and reason) is reported with the `connecting` state when a close triggered it. */
	async #connect(cause: { code?: number; reason?: string } = {}): Promise<void> {
		const gen = ++this.#gen;
		this.#setState({ ...cause, state: 'connecting', attempt: this.#attempt });
		const timeout = this.#opts.connectTimeout ?? DEFAULT_CONNECT;
		let url: string;
		try {
			url = await this.#resolveUrl(timeout);
		} catch (err) {
			if (gen !== this.#gen) return;
			const e =
				err instanceof RoomcastError
					? err
					: new RoomcastError('mint_failed', `could not get a connection URL: ${String(err)}`, { cause: err });
			if (e.code !== 'mint_failed') return this.#die(e);
			this.#emitter.emit('error', e);
			return this.#retry({ error: e });
		}
		if (gen !== this.#gen) return;
		const WS = this.#opts.WebSocket ?? (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket;
		if (!WS) return this.#die(new RoomcastError('closed', 'no WebSocket implementation: pass options.WebSocket'));
		let ws: WebSocketLike;
		try {
			ws = new WS(url);
		} catch (err) {
			// A malformed URL: retrying the same URL cannot help, a fresh mint might.
			const e = new RoomcastError('mint_failed', `bad connection URL ${redact(url)}: ${String(err)}`, { cause: err });
			if (!this.#opts.mint) return this.#die(e);
			this.#emitter.emit('error', e);
			return this.#retry({ error: e });
		}
		this.#ws = ws;
		this.#timers.connect = this.#clock.setTimeout(() => this.#lost(gen, 'no welcome in time'), timeout);
		ws.onmessage = (ev) => {
			if (gen === this.#gen) this.#onFrame(gen, ev.data);
		};
		ws.onclose = (ev) => {
			if (gen === this.#gen) this.#onClose(ev.code, ev.reason);
		};
		ws.onerror = () => {
			// A close event follows; it carries the code.
		};
		ws.onopen = null;
	}

	async #resolveUrl(timeout: number): Promise<string> {
		const o = this.#opts;
		if (o.mint) {
			let timer: unknown;
			const limit = new Promise<never>((_, reject) => {
				timer = this.#clock.setTimeout(
					() => reject(new RoomcastError('mint_failed', `mint() took longer than ${timeout} ms`)),
					timeout
				);
			});
			try {
				const u = await Promise.race([o.mint(), limit]);
				if (!u) throw new RoomcastError('mint_failed', 'mint() returned no URL');
				return toWebSocketUrl(u, o.baseUrl);
			} finally {
				this.#clock.clearTimeout(timer);
			}
		}
		let raw: string;
		if (o.url !== undefined) raw = String(o.url);
		else if (o.key !== undefined) raw = `/_/connect/${encodeURIComponent(o.key)}`;
		else throw new RoomcastError('closed', 'no url, key or mint given: nothing to connect to');
		if (this.#spent) {
			throw new RoomcastError(
				'key_used',
				'the one-time connection key was used already; pass mint (or action) to get a fresh key on each reconnect'
			);
		}
		try {
			return toWebSocketUrl(raw, o.baseUrl);
		} catch (err) {
			throw new RoomcastError('closed', `bad connection URL ${redact(raw)}: ${String(err)}`, { cause: err });
		}
	}

	#onFrame(gen: number, data: unknown): void {
		if (typeof data !== 'string') return; // roomcast speaks text frames only
		const msgs = parseFrame(data, (line, err) =>
			this.#emitter.emit(
				'error',
				new RoomcastError('bad_request', `unreadable message from the node: ${line.slice(0, 80)}`, { cause: err })
			)
		);
		// Any message proves the connection is alive.
		this.#clear('pong');
		for (const msg of msgs) {
			if (gen !== this.#gen) return; // a listener closed or replaced the socket
			if (msg.type === 'pong') continue;
			if (msg.type === 'welcome') this.#onWelcome(msg);
			this.#emitter.emit('message', msg);
		}
	}

	#onWelcome(msg: WelcomeMessage): void {
		this.#clear('connect');
		this.#attempt = 0;
		this.#drained = false;
		if (!this.#opts.mint && this.#staticUrlIsOneTime()) this.#spent = true;
		if (typeof msg.ping_interval === 'number' && msg.ping_interval > 0) this.#pingMs = msg.ping_interval * 1000;
		this.#setState({ state: 'open' });
		this.#schedulePing();
	}

	#staticUrlIsOneTime(): boolean {
		if (this.#opts.key !== undefined && this.#opts.url === undefined) return true;
		return this.#opts.url !== undefined && isOneTimeUrl(String(this.#opts.url));
	}

	#schedulePing(): void {
		this.#clear('ping');
		const gen = this.#gen;
		this.#timers.ping = this.#clock.setTimeout(() => {
			if (gen !== this.#gen) return;
			this.#ping();
			this.#schedulePing();
		}, this.#pingMs);
	}

	/** Sends a ping and arms the pong deadline (unless one is armed already). */
	#ping(): void {
		if (!this.send({ type: 'ping' })) return;
		if (this.#timers.pong !== undefined) return;
		const gen = this.#gen;
		const wait = Math.min(this.#opts.pongTimeout ?? DEFAULT_PONG, this.#pingMs);
		this.#timers.pong = this.#clock.setTimeout(() => this.#lost(gen, 'no pong in time'), wait);
	}

	/** The socket is dead without a close event (silent TCP, stalled handshake): drop it and retry. */
	#lost(gen: number, reason: string): void {
		if (gen !== this.#gen) return;
		const ws = this.#detach();
		try {
			ws?.close(4000, reason);
		} catch {
			// ignore
		}
		this.#onClose(1006, reason);
	}

	#onClose(code: number, reason: string): void {
		this.#clearTimers();
		this.#detach();
		this.#gen++;
		if (this.#fatal.includes(code)) {
			const what = code === 4001 ? 'the connection key is invalid, expired or used' : 'the node refused this session';
			return this.#die(
				new RoomcastError(closeCodeToError(code), `${what} (close ${code}${reason ? `: ${reason}` : ''})`, {
					closeCode: code
				}),
				code,
				reason
			);
		}
		if (code === 1000) {
			// A normal close by the node is deliberate (kicked, session ended by the back-end).
			return this.#setState({ state: 'closed', code, reason });
		}
		if (this.#spent) {
			return this.#die(
				new RoomcastError(
					'key_used',
					'connection lost and the one-time key cannot be reused; pass mint (or action) to reconnect'
				),
				code,
				reason
			);
		}
		if (IMMEDIATE_CLOSE_CODES.includes(code) && !this.#drained) {
			// Node draining or restarting: go elsewhere at once. The node spreads these closes over its grace period.
			this.#drained = true;
			void this.#connect({ code, reason });
			return;
		}
		this.#retry({ code, reason });
	}

	#retry(info: Omit<StateInfo, 'state'>): void {
		const delay = fullJitter(this.#attempt, this.#opts.backoff, this.#random);
		const attempt = this.#attempt++;
		this.#setState({ ...info, state: 'reconnecting', attempt, delay });
		const gen = this.#gen;
		this.#timers.retry = this.#clock.setTimeout(() => {
			if (gen === this.#gen && this.#state === 'reconnecting') void this.#connect();
		}, delay);
	}

	#die(error: RoomcastError, code?: number, reason?: string): void {
		this.#gen++;
		this.#clearTimers();
		try {
			this.#detach()?.close(1000);
		} catch {
			// ignore
		}
		this.#unwake?.();
		this.#unwake = undefined;
		const info: StateInfo = { state: 'closed', error };
		if (code !== undefined) info.code = code;
		if (reason) info.reason = reason;
		this.#setState(info);
		this.#emitter.emit('error', error);
	}

	#detach(): WebSocketLike | undefined {
		const ws = this.#ws;
		this.#ws = undefined;
		if (ws) {
			ws.onopen = ws.onmessage = ws.onclose = ws.onerror = null;
		}
		return ws;
	}

	#setState(info: StateInfo): void {
		this.#state = info.state;
		this.#emitter.emit('state', info);
	}

	#clear(name: TimerName): void {
		const h = this.#timers[name];
		if (h !== undefined) this.#clock.clearTimeout(h);
		delete this.#timers[name];
	}

	#clearTimers(): void {
		for (const k of Object.keys(this.#timers) as Array<TimerName>) this.#clear(k);
	}
}

/** Hides the key in a /_/connect/<key> URL for messages. */
function redact(url: string): string {
	return url.replace(/(\/_\/connect\/)[^/?#]+/, '$1…').replace(/([?&]key=)[^&#]+/, '$1…');
}

