import { systemClock, type Clock } from '../clock.js';
import type { Link, StateInfo } from '../link.js';
import { PresenceTracker } from '../presence.js';
import type { AckMessage, ClientMessage, HistoryPosition, ServerMessage, WelcomeMessage } from '../protocol.js';
import { toWireError, toWireState, type HubConfig, type HubMessage, type TabMessage } from './messages.js';

/** A tab as the hub sees it: where to post. MessagePort qualifies. */
export interface HubPort {
	postMessage(msg: HubMessage): void;
}

export interface HubOptions {
	/**
	 * Creates the one upstream link from the first tab's config; `mint` asks a
	 * live tab for a fresh URL. The worker passes a {@link Connection}.
	 */
	createLink(config: HubConfig, mint: (() => Promise<string>) | undefined): Link;
	clock?: Clock;
	/**
	 * A tab silent this long (ms) is gone. Tabs beat every 5 s, but browsers
	 * throttle timers of hidden tabs to once a minute, hence 75 s by default.
	 * Web Locks (when present) and `bye` on pagehide detect closed tabs at once;
	 * this timeout covers crashes where neither works.
	 */
	heartbeatTimeout?: number;
	/** How long a tab may take to mint (ms). Default 15 000. */
	mintTimeout?: number;
}

interface PortState {
	lastSeen: number;
	canMint: boolean;
}

interface HubRoom {
	holders: Set<HubPort>;
	/** idle: not joined on the current socket; joining: join sent; joined: acked. */
	status: 'idle' | 'joining' | 'joined';
	/** Auto-joined by the node (welcome.rooms): delivered to every tab, never left. */
	auto: boolean;
	meta: unknown;
	/**
	 * History position (rooms with history): the first tab's `since`, then the
	 * seq/epoch of the join acks and of the events forwarded to the tabs.
	 * Sent as `since` on every upstream (re-)join.
	 */
	pos: HistoryPosition | undefined;
	/** The `recovered` of the upstream join on the current socket, for tabs re-joining with since. */
	recovered: boolean | undefined;
	/** Tabs waiting for the ack of the upstream join, with their own request ids. */
	waiters: Array<{ port: HubPort; id: number | undefined }>;
}

type Route = { join: string } | { port: HubPort; id: number };

/**
 * The SharedWorker's brain: one upstream connection shared by every tab of
 * the origin. Pure logic (no worker APIs), so it is unit-tested with fake ports.
 *
 * - Rooms are reference-counted by tab: the first tab's join goes upstream,
 *   later tabs get an ack and the current `session:list` at once; a room is
 *   left upstream when its last tab leaves or goes away.
 * - Request ids are rewritten so that each `ack`/`reply`/`error` reaches the
 *   tab that asked, with that tab's id.
 * - Room traffic goes to the tabs holding the room; direct messages, welcome
 *   and state go to every tab.
 * - After a reconnect the hub re-joins every held room itself.
 * - All tabs share one session: a publish with `echo: false` from one tab is
 *   copied locally to the other tabs in the room, which the node would skip.
 */
export class Hub {
	#opts: HubOptions;
	#clock: Clock;
	#timeout: number;
	#ports = new Map<HubPort, PortState>();
	#rooms = new Map<string, HubRoom>();
	#routes = new Map<number, Route>();
	#nextId = 1;
	#link: Link | undefined;
	#offs: Array<() => void> = [];
	#lastState: StateInfo = { state: 'idle' };
	#welcome: WelcomeMessage | undefined;
	#presence = new PresenceTracker();
	#mints = new Map<number, { port: HubPort; resolve(url: string): void; reject(err: Error): void; timer: unknown }>();
	#nextMint = 1;
	#sweep: unknown;

	constructor(opts: HubOptions) {
		this.#opts = opts;
		this.#clock = opts.clock ?? systemClock;
		this.#timeout = opts.heartbeatTimeout ?? 75_000;
	}

	/** Number of live tabs. */
	get tabs(): number {
		return this.#ports.size;
	}

	/** The upstream link (undefined until the first hello, and after the last tab left). */
	get link(): Link | undefined {
		return this.#link;
	}

	/** Rooms joined upstream or being joined, with their tab counts. */
	rooms(): Record<string, number> {
		const out: Record<string, number> = {};
		for (const [name, r] of this.#rooms) out[name] = r.auto ? this.#ports.size : r.holders.size;
		return out;
	}

	/** Handles one message from a tab. */
	receive(port: HubPort, m: TabMessage): void {
		if (!m || typeof m !== 'object') return;
		const st = this.#ports.get(port);
		if (st) st.lastSeen = this.#clock.now();
		switch (m.t) {
			case 'hello':
				return this.#hello(port, m.config);
			case 'bye':
				return this.disconnect(port);
			case 'hb':
				return;
			case 'wake':
				this.#link?.wake();
				return;
			case 'minted': {
				const w = this.#mints.get(m.req);
				if (!w) return;
				this.#mints.delete(m.req);
				this.#clock.clearTimeout(w.timer);
				if (m.url) w.resolve(m.url);
				else w.reject(new Error(m.error ?? 'mint failed'));
				return;
			}
			case 'msg':
				if (!st) return; // a tab that said bye must hello again
				return this.#fromTab(port, m.msg);
		}
	}

	/** Forgets a tab (bye, released lock, heartbeat timeout): it leaves the rooms no other tab holds. */
	disconnect(port: HubPort): void {
		if (!this.#ports.delete(port)) return;
		for (const [req, w] of this.#mints) {
			if (w.port === port) {
				this.#mints.delete(req);
				this.#clock.clearTimeout(w.timer);
				w.reject(new Error('the tab went away while minting'));
			}
		}
		for (const [name, r] of [...this.#rooms]) {
			r.waiters = r.waiters.filter((w) => w.port !== port);
			if (r.holders.delete(port) && r.holders.size === 0 && !r.auto) this.#leaveUpstream(name, undefined);
		}
		for (const [id, route] of this.#routes) {
			if ('port' in route && route.port === port) this.#routes.delete(id);
		}
		if (this.#ports.size === 0) this.#shutdown();
	}

	/** Drops tabs silent for longer than the heartbeat timeout. Called on a timer; public for tests. */
	sweep(): void {
		const now = this.#clock.now();
		for (const [port, st] of [...this.#ports]) {
			if (now - st.lastSeen > this.#timeout) this.disconnect(port);
		}
	}

	#hello(port: HubPort, config: HubConfig): void {
		this.#ports.set(port, { lastSeen: this.#clock.now(), canMint: config.canMint });
		this.#armSweep();
		if (!this.#link || this.#link.state === 'closed') this.#start(config);
		port.postMessage({ t: 'state', info: toWireState(this.#lastState) });
		if (this.#link?.state === 'open' && this.#welcome) port.postMessage({ t: 'msg', msg: this.#welcome });
	}

	#start(config: HubConfig): void {
		this.#offs.forEach((f) => f());
		this.#link?.close();
		this.#rooms.clear();
		this.#routes.clear();
		this.#presence.clear();
		this.#welcome = undefined;
		const link = this.#opts.createLink(config, config.canMint ? () => this.#mint() : undefined);
		this.#link = link;
		this.#offs = [
			link.on('state', (info) => this.#onState(info)),
			link.on('message', (msg) => this.#onUpstream(msg)),
			link.on('error', (err) => this.#broadcast({ t: 'error', error: toWireError(err) }))
		];
		link.open();
	}

	#shutdown(): void {
		this.#offs.forEach((f) => f());
		this.#offs = [];
		this.#link?.close();
		this.#link = undefined;
		this.#lastState = { state: 'idle' };
		this.#rooms.clear();
		this.#routes.clear();
		this.#presence.clear();
		this.#welcome = undefined;
		if (this.#sweep !== undefined) this.#clock.clearTimeout(this.#sweep);
		this.#sweep = undefined;
	}

	#armSweep(): void {
		if (this.#sweep !== undefined) return;
		const every = Math.max(1000, Math.floor(this.#timeout / 3));
		this.#sweep = this.#clock.setTimeout(() => {
			this.#sweep = undefined;
			this.sweep();
			if (this.#ports.size > 0) this.#armSweep();
		}, every);
	}

	/** Asks the most recently seen tab that can mint for a fresh connection URL. */
	#mint(): Promise<string> {
		let best: HubPort | undefined;
		let seen = -Infinity;
		for (const [port, st] of this.#ports) {
			if (st.canMint && st.lastSeen > seen) {
				best = port;
				seen = st.lastSeen;
			}
		}
		if (!best) return Promise.reject(new Error('no tab can mint a connection URL'));
		const port = best;
		const req = this.#nextMint++;
		return new Promise((resolve, reject) => {
			const timer = this.#clock.setTimeout(() => {
				this.#mints.delete(req);
				reject(new Error('the tab did not mint in time'));
			}, this.#opts.mintTimeout ?? 15_000);
			this.#mints.set(req, { port, resolve, reject, timer });
			port.postMessage({ t: 'mint', req });
		});
	}

	#fromTab(port: HubPort, msg: ClientMessage): void {
		switch (msg.type) {
			case 'join':
				return this.#join(port, msg.room, msg.id, msg.meta, validPosition(msg.since));
			case 'leave':
				return this.#leave(port, msg.room, msg.id);
			case 'ping':
				port.postMessage({ t: 'msg', msg: { type: 'pong' } });
				return;
			default:
				break;
		}
		if (this.#link?.state !== 'open') {
			if (msg.id !== undefined) this.#reply(port, { type: 'error', id: msg.id, code: 'unavailable', message: 'not connected' });
			return;
		}
		const up = { ...msg };
		if (msg.id !== undefined) {
			up.id = this.#nextId++;
			this.#routes.set(up.id, { port, id: msg.id });
		}
		if (!this.#link.send(up)) {
			if (up.id !== undefined) this.#routes.delete(up.id);
			if (msg.id !== undefined) this.#reply(port, { type: 'error', id: msg.id, code: 'unavailable', message: 'not connected' });
			return;
		}
		if (msg.type === 'publish' && msg.echo === false && this.#welcome) {
			// The node skips the sender session, which all tabs share: copy to the other tabs in the room.
			const r = this.#rooms.get(msg.room);
			const event: ServerMessage = { type: 'event', room: msg.room, event: msg.event, data: msg.data, from: this.#welcome.session };
			for (const p of this.#holders(r)) if (p !== port) p.postMessage({ t: 'msg', msg: event });
		}
	}

	#join(port: HubPort, room: string, id: number | undefined, meta: unknown, since: HistoryPosition | undefined): void {
		let r = this.#rooms.get(room);
		if (!r) {
			r = { holders: new Set(), status: 'idle', auto: false, meta, pos: since, recovered: undefined, waiters: [] };
			this.#rooms.set(room, r);
		}
		r.holders.add(port);
		const open = this.#link?.state === 'open';
		if (open && (r.auto || r.status === 'joined')) {
			if (id !== undefined) {
				// The room's position is the last event forwarded: the tab has it (ports are FIFO).
				const ack: AckMessage = { type: 'ack', id };
				if (r.pos) {
					ack.seq = r.pos.seq;
					if (r.pos.epoch !== undefined) ack.epoch = r.pos.epoch;
				}
				if (since && r.recovered !== undefined) ack.recovered = r.recovered;
				this.#reply(port, ack);
			}
			if (this.#presence.has(room)) {
				port.postMessage({ t: 'msg', msg: { type: 'session:list', room, sessions: this.#presence.sessions(room) } });
			}
			return;
		}
		r.waiters.push({ port, id });
		if (open && r.status === 'idle') this.#joinUpstream(room, r);
	}

	#joinUpstream(room: string, r: HubRoom): void {
		const id = this.#nextId++;
		const msg: ClientMessage = { type: 'join', id, room };
		if (r.meta !== undefined) msg.meta = r.meta;
		if (r.pos) msg.since = { ...r.pos };
		if (this.#link?.send(msg)) {
			r.status = 'joining';
			this.#routes.set(id, { join: room });
		}
	}

	#leave(port: HubPort, room: string, id: number | undefined): void {
		const r = this.#rooms.get(room);
		if (r) {
			r.holders.delete(port);
			r.waiters = r.waiters.filter((w) => w.port !== port);
		}
		if (r && !r.auto && r.holders.size === 0) {
			this.#leaveUpstream(room, id === undefined ? undefined : { port, id });
			return;
		}
		if (id !== undefined) this.#reply(port, { type: 'ack', id });
	}

	/** Leaves upstream; `ack` (when given) gets the node's answer, or a local ack when offline. */
	#leaveUpstream(room: string, ack: { port: HubPort; id: number } | undefined): void {
		this.#rooms.delete(room);
		this.#presence.delete(room);
		const link = this.#link;
		if (link?.state === 'open') {
			const id = this.#nextId++;
			if (ack) this.#routes.set(id, ack);
			if (link.send({ type: 'leave', id, room })) return;
			this.#routes.delete(id);
		}
		if (ack) this.#reply(ack.port, { type: 'ack', id: ack.id });
	}

	#reply(port: HubPort, msg: ServerMessage): void {
		port.postMessage({ t: 'msg', msg });
	}

	#holders(r: HubRoom | undefined): Iterable<HubPort> {
		if (!r) return [];
		return r.auto ? this.#ports.keys() : r.holders;
	}

	#broadcast(m: HubMessage): void {
		for (const port of this.#ports.keys()) port.postMessage(m);
	}

	#onState(info: StateInfo): void {
		this.#lastState = info;
		if (info.state !== 'open') {
			// Replies of the old socket never come; tabs fail or re-send their requests themselves.
			this.#routes.clear();
			for (const [name, r] of this.#rooms) {
				if (r.auto) this.#rooms.delete(name);
				else {
					r.status = 'idle';
					r.recovered = undefined;
					r.waiters = [];
				}
			}
			if (info.state === 'closed') {
				this.#rooms.clear();
				this.#presence.clear();
			}
		}
		this.#broadcast({ t: 'state', info: toWireState(info) });
	}

	#onUpstream(msg: ServerMessage): void {
		switch (msg.type) {
			case 'welcome': {
				this.#welcome = msg;
				for (const room of msg.rooms ?? []) {
					const r = this.#rooms.get(room);
					if (r) {
						r.auto = true;
						r.status = 'joined';
					} else {
						this.#rooms.set(room, {
							holders: new Set(),
							status: 'joined',
							auto: true,
							meta: undefined,
							pos: undefined,
							recovered: undefined,
							waiters: []
						});
					}
				}
				for (const [room, r] of this.#rooms) {
					if (!r.auto && r.holders.size > 0 && r.status === 'idle') this.#joinUpstream(room, r);
				}
				this.#broadcast({ t: 'msg', msg });
				return;
			}
			case 'ack':
			case 'reply':
			case 'history':
			case 'error': {
				const route = msg.id === undefined ? undefined : this.#routes.get(msg.id);
				if (msg.id !== undefined) this.#routes.delete(msg.id);
				if (!route) {
					if (msg.type === 'error') this.#broadcast({ t: 'msg', msg });
					return;
				}
				if ('join' in route) return this.#joinAnswered(route.join, msg);
				if (this.#ports.has(route.port)) this.#reply(route.port, { ...msg, id: route.id });
				return;
			}
			case 'pong':
				return;
			default: {
				const room = (msg as { room?: string }).room;
				if (room === undefined) {
					this.#broadcast({ t: 'msg', msg });
					return;
				}
				const r = this.#rooms.get(room);
				if (!r) return; // left already
				if (msg.type === 'event' && typeof msg.seq === 'number') {
					// Never forward an event twice (same epoch, not above the position).
					if (r.pos && r.pos.epoch === msg.epoch && msg.seq <= r.pos.seq) return;
					r.pos = msg.epoch === undefined ? { seq: msg.seq } : { seq: msg.seq, epoch: msg.epoch };
				}
				this.#presence.apply(msg);
				for (const port of this.#holders(r)) port.postMessage({ t: 'msg', msg });
			}
		}
	}

	#joinAnswered(room: string, msg: ServerMessage): void {
		const r = this.#rooms.get(room);
		if (!r) return;
		const waiters = r.waiters;
		r.waiters = [];
		if (msg.type === 'error') {
			this.#rooms.delete(room);
			this.#presence.delete(room);
			for (const w of waiters) {
				if (w.id !== undefined) this.#reply(w.port, { ...msg, id: w.id });
			}
			return;
		}
		r.status = 'joined';
		const ack = msg as AckMessage;
		if (typeof ack.recovered === 'boolean') r.recovered = ack.recovered;
		// After a recovery the replayed events move the position; otherwise the ack sets it.
		if (ack.recovered !== true) {
			if (typeof ack.seq === 'number') r.pos = ack.epoch === undefined ? { seq: ack.seq } : { seq: ack.seq, epoch: ack.epoch };
			else r.pos = undefined;
		}
		for (const w of waiters) {
			if (w.id === undefined) continue;
			const ack: ServerMessage = { ...(msg as { type: 'ack'; id: number }), id: w.id };
			this.#reply(w.port, ack);
		}
	}
}


function validPosition(v: unknown): HistoryPosition | undefined {
	if (!v || typeof v !== 'object' || typeof (v as { seq?: unknown }).seq !== 'number') return undefined;
	const { seq, epoch } = v as { seq: number; epoch?: unknown };
	return typeof epoch === 'string' ? { seq, epoch } : { seq };
}
