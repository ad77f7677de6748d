import { systemClock, type Clock } from '../clock.js';
import type { Link, StateInfo } from '../link.js';
import { PresenceTracker } from '../presence.js';
import type { AckMessage, ClientMessage, HistoryPageMessage, HistoryPosition, ServerMessage, WelcomeMessage } from '../protocol.js';
import { CatchUp, type PageQuery } from './catchup.js';
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
	/** Tabs in the room (not those catching up). */
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
	/** The since of the upstream join on the current socket: its ack answers tabs that joined with the same. */
	sent: HistoryPosition | undefined;
	/** Tabs waiting for the ack of the upstream join, with their own request ids and since. */
	waiters: Array<{ port: HubPort; id: number | undefined; since: HistoryPosition | undefined }>;
	/** Tabs that joined behind the room's position, while the events they missed are read (see {@link CatchUp}). */
	catchups: Map<HubPort, CatchUp>;
}

type Route = { join: string } | { catchup: CatchUp } | { port: HubPort; id: number };

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
 * - A tab that joins a held room with `since` behind the room's position
 *   (it was away: its port was lost, or the page came back from the
 *   back/forward cache) gets the events it missed read from the room's
 *   history, then the live ones, like a direct join's recovery: see {@link CatchUp}.
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
		for (const [name, r] of this.#rooms) out[name] = r.auto ? this.#ports.size : r.holders.size + r.catchups.size;
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
			const held = r.holders.delete(port);
			if ((r.catchups.delete(port) || held) && this.#empty(r)) this.#leaveUpstream(name, undefined);
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
			if (r) this.#deliver(r, event, port);
		}
	}

	#join(port: HubPort, room: string, id: number | undefined, meta: unknown, since: HistoryPosition | undefined): void {
		let r = this.#rooms.get(room);
		if (!r) {
			r = {
				holders: new Set(),
				status: 'idle',
				auto: false,
				meta,
				pos: since,
				recovered: undefined,
				sent: undefined,
				waiters: [],
				catchups: new Map()
			};
			this.#rooms.set(room, r);
		}
		const pending = r.catchups.get(port);
		if (pending) {
			// Joined again while catching up: the same answer will do.
			if (id !== undefined) pending.ids.push(id);
			return;
		}
		const open = this.#link?.state === 'open';
		if (open && (r.auto || r.status === 'joined')) return this.#admit(room, r, port, id, since);
		r.holders.add(port);
		r.waiters.push({ port, id, since });
		if (open && r.status === 'idle') this.#joinUpstream(room, r);
	}

	/**
	 * Lets a tab into a room joined upstream: an ack with the room's position
	 * (the last event forwarded: the tab has it, ports are FIFO) and, unless
	 * the node's own follows (`list` false), the current `session:list`.
	 *
	 * With since, recovered is what the node would answer: a tab behind the
	 * position in the same epoch first catches up on what it missed; one from
	 * another epoch, or in a room without a position (no history), gets false;
	 * one at or ahead of the position has nothing to catch up (the upstream
	 * join's recovered, true if it had no since).
	 */
	#admit(room: string, r: HubRoom, port: HubPort, id: number | undefined, since: HistoryPosition | undefined, list = true): void {
		const pos = r.pos;
		let recovered: boolean | undefined;
		if (since && !r.auto) {
			if (!pos) recovered = r.recovered ?? false;
			else if (since.epoch !== pos.epoch) recovered = false;
			else if (since.seq < pos.seq) return this.#catchUp(room, r, port, id, since, pos);
			else recovered = r.recovered ?? true;
		}
		r.holders.add(port);
		if (id !== undefined) this.#reply(port, positionAck(id, pos, recovered));
		if (list) this.#sendList(room, port);
	}

	#sendList(room: string, port: HubPort): void {
		if (this.#presence.has(room)) {
			port.postMessage({ t: 'msg', msg: { type: 'session:list', room, sessions: this.#presence.sessions(room) } });
		}
	}

	/** Starts reading, for one tab, the events in (since, pos] from the room's history. */
	#catchUp(room: string, r: HubRoom, port: HubPort, id: number | undefined, since: HistoryPosition, pos: HistoryPosition): void {
		r.holders.delete(port);
		const c = new CatchUp(room, port, since, { ...pos });
		if (id !== undefined) c.ids.push(id);
		r.catchups.set(port, c);
		this.#readPage(c, c.query());
	}

	#readPage(c: CatchUp, q: PageQuery | false): void {
		if (q === false) return this.#caughtUp(c, false);
		const id = this.#nextId++;
		this.#routes.set(id, { catchup: c });
		if (!this.#link?.send({ type: 'history', id, room: c.room, after: q.after, limit: q.limit })) {
			this.#routes.delete(id);
			this.#caughtUp(c, false);
		}
	}

	#pageAnswered(c: CatchUp, msg: ServerMessage): void {
		if (this.#rooms.get(c.room)?.catchups.get(c.port) !== c) return; // the tab left or went away
		// An error (history unavailable, too many requests) is a failed recovery, as on the node.
		const next = msg.type === 'history' ? c.page(msg as HistoryPageMessage) : false;
		if (typeof next === 'boolean') this.#caughtUp(c, next);
		else this.#readPage(c, next);
	}

	/**
	 * Ends a catch-up the way the node ends a join with since: the ack (the
	 * position the events were read up to, and recovered), the current
	 * `session:list`, the missed events if recovered, then the live events
	 * held meanwhile; from then on the tab gets the room's traffic.
	 */
	#caughtUp(c: CatchUp, recovered: boolean): void {
		const r = this.#rooms.get(c.room);
		if (!r || r.catchups.get(c.port) !== c) return;
		r.catchups.delete(c.port);
		for (const id of c.ids) this.#reply(c.port, positionAck(id, c.upto, recovered));
		this.#sendList(c.room, c.port);
		if (recovered) for (const ev of c.events) this.#reply(c.port, ev);
		for (const m of c.held) this.#reply(c.port, m);
		r.holders.add(c.port);
	}

	#joinUpstream(room: string, r: HubRoom): void {
		const id = this.#nextId++;
		const msg: ClientMessage = { type: 'join', id, room };
		if (r.meta !== undefined) msg.meta = r.meta;
		if (r.pos) msg.since = { ...r.pos };
		if (this.#link?.send(msg)) {
			r.status = 'joining';
			r.sent = r.pos && { ...r.pos };
			this.#routes.set(id, { join: room });
		}
	}

	#leave(port: HubPort, room: string, id: number | undefined): void {
		const r = this.#rooms.get(room);
		if (r) {
			r.holders.delete(port);
			r.catchups.delete(port);
			r.waiters = r.waiters.filter((w) => w.port !== port);
		}
		if (r && this.#empty(r)) {
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

	/** Whether no tab is in the room or joining it (auto-joined rooms are never empty). */
	#empty(r: HubRoom): boolean {
		return !r.auto && r.holders.size === 0 && r.catchups.size === 0;
	}

	/**
	 * Sends room traffic to the room's tabs (all tabs for an auto-joined room),
	 * but `except`. Tabs catching up get the events later, after the replay;
	 * they get the presence as a whole list then, so deltas are not kept.
	 */
	#deliver(r: HubRoom, msg: ServerMessage, except?: HubPort): void {
		for (const port of r.auto ? this.#ports.keys() : r.holders) if (port !== except) port.postMessage({ t: 'msg', msg });
		if (msg.type === 'event') for (const c of r.catchups.values()) if (c.port !== except) c.held.push(msg);
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
				// Unanswered catch-ups are dropped with their requests: the tabs
				// re-send their joins after the next welcome, as for any join.
				r.catchups.clear();
				if (r.auto || r.holders.size === 0) {
					this.#rooms.delete(name);
					this.#presence.delete(name);
				} else {
					r.status = 'idle';
					r.recovered = undefined;
					r.sent = undefined;
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
							sent: undefined,
							waiters: [],
							catchups: new Map()
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
				if ('catchup' in route) return this.#pageAnswered(route.catchup, msg);
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
				this.#deliver(r, msg);
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
			if (samePosition(w.since, r.sent)) {
				// The node answered this very since: its ack stands (the replay follows to every holder).
				if (w.id !== undefined) this.#reply(w.port, { ...ack, id: w.id });
			} else {
				// Another since than the one sent (or none): answered like a join of the joined room.
				this.#admit(room, r, w.port, w.id, w.since, false);
			}
		}
	}
}

/** A join's ack with a room's position and, for a join with since, recovered. */
function positionAck(id: number, pos: HistoryPosition | undefined, recovered: boolean | undefined): AckMessage {
	const ack: AckMessage = { type: 'ack', id };
	if (pos) {
		ack.seq = pos.seq;
		if (pos.epoch !== undefined) ack.epoch = pos.epoch;
	}
	if (recovered !== undefined) ack.recovered = recovered;
	return ack;
}

function samePosition(a: HistoryPosition | undefined, b: HistoryPosition | undefined): boolean {
	return a === b || (a !== undefined && b !== undefined && a.seq === b.seq && a.epoch === b.epoch);
}

function validPosition(v: unknown): HistoryPosition | undefined {
	if (!v || typeof v !== 'object' || typeof (v as { seq?: unknown }).seq !== 'number') return undefined;
	const { seq, epoch } = v as { seq: number; epoch?: unknown };
	return typeof epoch === 'string' ? { seq, epoch } : { seq };
}
