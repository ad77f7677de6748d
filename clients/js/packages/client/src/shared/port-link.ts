import { systemClock, type Clock } from '../clock.js';
import type { ConnectionOptions } from '../connection.js';
import { Emitter } from '../emitter.js';
import type { ConnectionState, Link, LinkEvents } from '../link.js';
import type { ClientMessage } from '../protocol.js';
import { fromWireError, fromWireState, type HubConfig, type HubMessage, type TabMessage } from './messages.js';

/** The parts of MessagePort the tab side uses. */
export interface PortLike {
	postMessage(msg: unknown): void;
	addEventListener(type: 'message', fn: (ev: { data: unknown }) => void): void;
	start?(): void;
}

/** The parts of SharedWorker used. */
export interface SharedWorkerLike {
	port: PortLike;
	/** The worker's `error` event fires when its script fails to load (404, parse error, CSP). */
	addEventListener?(type: 'error', fn: (ev: unknown) => void): void;
}

export interface WorkerLinkOptions {
	clock?: Clock | undefined;
	/** Heartbeat period to the hub in ms. Default 5 000 (see the hub's timeout). */
	heartbeat?: number;
	/** Where pagehide/pageshow/visibility events come from. Default: globalThis (window). null: none. */
	window?: EventTargetLike | null;
	/** Web Locks for instant tab-death detection. Default: navigator.locks when present. null: none. */
	locks?: LocksLike | null;
	/** Called once, on the first message from the hub (the worker script runs). */
	onHub?: () => void;
}

export interface EventTargetLike {
	addEventListener(type: string, fn: (ev: { persisted?: boolean }) => void): void;
	removeEventListener(type: string, fn: (ev: { persisted?: boolean }) => void): void;
}

export interface LocksLike {
	request(name: string, fn: () => Promise<unknown>): Promise<unknown>;
}

let tabSeq = 0;

/**
 * A tab's side of the SharedWorker: a {@link Link} whose socket lives in the
 * worker's hub. The tab sends heartbeats and holds a Web Lock for its life
 * (the hub waits on it to learn at once when the tab is gone, since
 * MessagePort has no close event), says `bye` on pagehide and hello again on
 * pageshow (back/forward cache), answers the hub's mint requests with its own
 * `mint`, and forwards wake signals.
 */
export class WorkerLink implements Link {
	#port: PortLike;
	#opts: ConnectionOptions;
	#clock: Clock;
	#hbMs: number;
	#win: EventTargetLike | null;
	#locks: LocksLike | null;
	#emitter = new Emitter<LinkEvents>();
	#state: ConnectionState = 'idle';
	#hb: unknown;
	#lockName: string | undefined;
	#releaseLock: (() => void) | undefined;
	#unlisten: (() => void) | undefined;
	#said = false;
	#onHub: (() => void) | undefined;

	constructor(port: PortLike, opts: ConnectionOptions, o: WorkerLinkOptions = {}) {
		this.#port = port;
		this.#opts = opts;
		this.#clock = o.clock ?? systemClock;
		this.#hbMs = o.heartbeat ?? 5_000;
		const g = globalThis as unknown as { addEventListener?: unknown; navigator?: { locks?: LocksLike } };
		this.#win = o.window !== undefined ? o.window : typeof g.addEventListener === 'function' ? (g as EventTargetLike) : null;
		this.#locks = o.locks !== undefined ? o.locks : (g.navigator?.locks ?? null);
		this.#onHub = o.onHub;
		port.addEventListener('message', (ev) => this.#fromHub(ev.data as HubMessage));
		port.start?.();
	}

	get state(): ConnectionState {
		return this.#state;
	}

	on<K extends keyof LinkEvents>(name: K, fn: LinkEvents[K]): () => void {
		return this.#emitter.on(name, fn);
	}

	open(): void {
		if (this.#said) return;
		this.#said = true;
		this.#state = 'connecting';
		this.#emitter.emit('state', { state: 'connecting' });
		if (this.#win && !this.#unlisten) {
			const win = this.#win;
			const hide = () => this.#bye();
			const show = (ev: { persisted?: boolean }) => {
				if (ev.persisted && this.#state !== 'closed') {
					this.#said = false;
					this.open();
				}
			};
			win.addEventListener('pagehide', hide);
			win.addEventListener('pageshow', show);
			this.#unlisten = () => {
				win.removeEventListener('pagehide', hide);
				win.removeEventListener('pageshow', show);
			};
		}
		void this.#hello();
	}

	async #hello(): Promise<void> {
		const hello: TabMessage = { t: 'hello', config: hubConfig(this.#opts) };
		if (this.#locks && !this.#lockName) {
			const name = `roomcast-tab-${Date.now().toString(36)}-${(tabSeq++).toString(36)}-${Math.random().toString(36).slice(2)}`;
			try {
				await new Promise<void>((acquired, failed) => {
					this.#locks!
						.request(
							name,
							() =>
								new Promise<void>((release) => {
									this.#releaseLock = release;
									acquired();
								})
						)
						.catch(failed);
				});
				this.#lockName = name;
			} catch {
				// No lock: the heartbeat alone detects a dead tab.
			}
		}
		if (this.#lockName) hello.lock = this.#lockName;
		this.#post(hello);
		this.#beat();
	}

	#beat(): void {
		if (this.#hb !== undefined) this.#clock.clearTimeout(this.#hb);
		this.#hb = this.#clock.setTimeout(() => {
			if (!this.#said) return;
			this.#post({ t: 'hb' });
			this.#beat();
		}, this.#hbMs);
	}

	#bye(): void {
		if (!this.#said) return;
		this.#said = false;
		this.#post({ t: 'bye' });
		if (this.#hb !== undefined) this.#clock.clearTimeout(this.#hb);
		this.#hb = undefined;
	}

	/** Detaches this tab from the shared socket (other tabs keep it). */
	close(): void {
		this.#bye();
		this.#unlisten?.();
		this.#unlisten = undefined;
		this.#releaseLock?.();
		this.#releaseLock = undefined;
		this.#lockName = undefined;
		if (this.#state !== 'closed') {
			this.#state = 'closed';
			this.#emitter.emit('state', { state: 'closed', code: 1000, reason: 'client closed' });
		}
	}

	send(msg: ClientMessage): boolean {
		if (this.#state !== 'open') return false;
		this.#post({ t: 'msg', msg });
		return true;
	}

	wake(): void {
		if (this.#said) this.#post({ t: 'wake' });
	}

	#post(m: TabMessage): void {
		this.#port.postMessage(m);
	}

	#fromHub(m: HubMessage): void {
		if (!m || typeof m !== 'object' || this.#state === 'closed') return;
		const first = this.#onHub;
		this.#onHub = undefined;
		first?.();
		switch (m.t) {
			case 'state': {
				const info = fromWireState(m.info);
				this.#state = info.state;
				this.#emitter.emit('state', info);
				return;
			}
			case 'msg':
				this.#emitter.emit('message', m.msg);
				return;
			case 'error':
				this.#emitter.emit('error', fromWireError(m.error));
				return;
			case 'mint':
				void this.#mint(m.req);
				return;
		}
	}

	async #mint(req: number): Promise<void> {
		const mint = this.#opts.mint;
		if (!mint) return this.#post({ t: 'minted', req, error: 'this tab cannot mint' });
		try {
			const url = String(await mint());
			// Resolve relative URLs against the tab's page, which the worker cannot see.
			const loc = (globalThis as { location?: { href: string } }).location;
			const base = this.#opts.baseUrl ?? loc?.href;
			this.#post({ t: 'minted', req, url: base === undefined ? url : new URL(url, String(base)).toString() });
		} catch (err) {
			this.#post({ t: 'minted', req, error: String(err) });
		}
	}
}

/** The serializable connection options for the hub. */
export function hubConfig(o: ConnectionOptions): HubConfig {
	const loc = (globalThis as { location?: { href: string } }).location;
	const c: HubConfig = { canMint: typeof o.mint === 'function' };
	if (o.url !== undefined) c.url = String(o.url);
	if (o.key !== undefined) c.key = o.key;
	const base = o.baseUrl ?? loc?.href;
	if (base !== undefined) c.baseUrl = String(base);
	if (o.backoff) c.backoff = { ...o.backoff };
	if (o.pingInterval !== undefined) c.pingInterval = o.pingInterval;
	if (o.pongTimeout !== undefined) c.pongTimeout = o.pongTimeout;
	if (o.connectTimeout !== undefined) c.connectTimeout = o.connectTimeout;
	if (o.fatalCloseCodes) c.fatalCloseCodes = [...o.fatalCloseCodes];
	return c;
}
