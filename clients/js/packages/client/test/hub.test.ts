import { beforeEach, describe, expect, it } from 'vitest';
import { RoomcastClient } from '../src/client.js';
import { Connection } from '../src/connection.js';
import { Emitter } from '../src/emitter.js';
import type { ConnectionState, Link, LinkEvents, StateInfo } from '../src/link.js';
import type { ClientMessage, ServerMessage } from '../src/protocol.js';
import { Hub, type HubPort } from '../src/shared/hub.js';
import type { HubConfig, HubMessage, TabMessage } from '../src/shared/messages.js';
import { WorkerLink, type PortLike } from '../src/shared/port-link.js';
import { FakeWebSocket, ManualClock, flush } from './helpers.js';

/** The upstream link as a test double: records what the hub sends, lets the test play the node. */
class FakeLink implements Link {
	state: ConnectionState = 'idle';
	sent: ClientMessage[] = [];
	opened = 0;
	closed = 0;
	#e = new Emitter<LinkEvents>();
	constructor(
		readonly config: HubConfig,
		readonly mint: (() => Promise<string>) | undefined
	) {}
	on<K extends keyof LinkEvents>(n: K, f: LinkEvents[K]) {
		return this.#e.on(n, f);
	}
	open() {
		this.opened++;
		this.setState({ state: 'connecting' });
	}
	close() {
		this.closed++;
		this.setState({ state: 'closed' });
	}
	send(m: ClientMessage) {
		if (this.state !== 'open') return false;
		this.sent.push(structuredClone(m));
		return true;
	}
	wake() {}
	setState(info: StateInfo) {
		this.state = info.state;
		this.#e.emit('state', info);
	}
	welcome(extra: Record<string, unknown> = {}) {
		this.setState({ state: 'open' });
		this.server({ type: 'welcome', session: 'S', node: 'n1', user: 'u', meta: {}, rooms: [], ping_interval: 25, ...extra });
	}
	server(m: unknown) {
		this.#e.emit('message', m as ServerMessage);
	}
	ofType(t: string) {
		return this.sent.filter((m) => m.type === t);
	}
}

/** A tab's port as the hub sees it: records what the hub posts. */
class TabPort implements HubPort {
	got: HubMessage[] = [];
	postMessage(m: HubMessage) {
		this.got.push(structuredClone(m));
	}
	msgs(type?: string): Array<Record<string, unknown>> {
		return this.got
			.filter((m): m is Extract<HubMessage, { t: 'msg' }> => m.t === 'msg')
			.map((m) => m.msg as unknown as Record<string, unknown>)
			.filter((m) => !type || m.type === type);
	}
	clear() {
		this.got = [];
	}
}

let clock: ManualClock;
let links: FakeLink[];
let hub: Hub;

const hello = (canMint = false): TabMessage => ({ t: 'hello', config: { canMint, url: 'ws://node.test/chat' } });
const msg = (m: ClientMessage): TabMessage => ({ t: 'msg', msg: m });
const link = () => links.at(-1)!;

beforeEach(() => {
	clock = new ManualClock();
	links = [];
	hub = new Hub({
		clock,
		heartbeatTimeout: 30_000,
		createLink: (config, mint) => {
			const l = new FakeLink(config, mint);
			links.push(l);
			return l;
		}
	});
});

function openHub(...tabs: TabPort[]) {
	for (const t of tabs) hub.receive(t, hello(true));
	link().welcome();
}

describe('Hub', () => {
	it('opens one upstream link for all tabs and replays the welcome to late tabs', () => {
		const a = new TabPort();
		const b = new TabPort();
		hub.receive(a, hello());
		hub.receive(b, hello());
		expect(links).toHaveLength(1);
		expect(link().opened).toBe(1);
		link().welcome();
		const c = new TabPort();
		hub.receive(c, hello());
		expect(links).toHaveLength(1);
		expect(c.got.map((m) => m.t)).toEqual(['state', 'msg']);
		expect(c.msgs('welcome')[0]).toMatchObject({ session: 'S' });
		expect(hub.tabs).toBe(3);
	});

	it('joins upstream once; a second tab gets the ack and the current session:list at once', () => {
		const a = new TabPort();
		const b = new TabPort();
		openHub(a, b);
		hub.receive(a, msg({ type: 'join', id: 1, room: 'lobby', meta: { n: 'a' } }));
		const up = link().ofType('join');
		expect(up).toHaveLength(1);
		link().server({ type: 'ack', id: up[0]!.id });
		link().server({ type: 'session:list', room: 'lobby', sessions: [{ session: 'S', user: 'u', meta: { n: 'a' }, connected_at: 1 }] });
		expect(a.msgs('ack')).toEqual([{ type: 'ack', id: 1 }]);
		expect(a.msgs('session:list')).toHaveLength(1);
		expect(b.msgs('session:list')).toHaveLength(0);

		hub.receive(b, msg({ type: 'join', id: 1, room: 'lobby' }));
		expect(link().ofType('join')).toHaveLength(1);
		expect(b.msgs('ack')).toEqual([{ type: 'ack', id: 1 }]);
		expect(b.msgs('session:list')[0]).toMatchObject({ room: 'lobby', sessions: [{ session: 'S' }] });
		expect(hub.rooms()).toEqual({ lobby: 2 });
	});

	it('lets a tab that joins during the upstream join wait for the same ack', () => {
		const a = new TabPort();
		const b = new TabPort();
		openHub(a, b);
		hub.receive(a, msg({ type: 'join', id: 5, room: 'r' }));
		hub.receive(b, msg({ type: 'join', id: 9, room: 'r' }));
		expect(link().ofType('join')).toHaveLength(1);
		link().server({ type: 'ack', id: link().ofType('join')[0]!.id });
		expect(a.msgs('ack')).toEqual([{ type: 'ack', id: 5 }]);
		expect(b.msgs('ack')).toEqual([{ type: 'ack', id: 9 }]);
	});

	it('passes a refused join to every waiting tab and forgets the room', () => {
		const a = new TabPort();
		const b = new TabPort();
		openHub(a, b);
		hub.receive(a, msg({ type: 'join', id: 1, room: 'secret' }));
		hub.receive(b, msg({ type: 'join', id: 2, room: 'secret' }));
		link().server({ type: 'error', id: link().ofType('join')[0]!.id, code: 'forbidden', message: 'no' });
		expect(a.msgs('error')).toEqual([{ type: 'error', id: 1, code: 'forbidden', message: 'no' }]);
		expect(b.msgs('error')[0]).toMatchObject({ id: 2, code: 'forbidden' });
		expect(hub.rooms()).toEqual({});
	});

	it('rewrites request ids so that equal tab ids never collide', () => {
		const a = new TabPort();
		const b = new TabPort();
		openHub(a, b);
		hub.receive(a, msg({ type: 'rpc', id: 1, method: 'm', data: 'a' }));
		hub.receive(b, msg({ type: 'rpc', id: 1, method: 'm', data: 'b' }));
		const [ra, rb] = link().ofType('rpc');
		expect(ra!.id).not.toBe(rb!.id);
		link().server({ type: 'reply', id: rb!.id, data: 'for b' });
		link().server({ type: 'reply', id: ra!.id, data: 'for a' });
		expect(a.msgs('reply')).toEqual([{ type: 'reply', id: 1, data: 'for a' }]);
		expect(b.msgs('reply')).toEqual([{ type: 'reply', id: 1, data: 'for b' }]);
	});

	it('routes room traffic to the tabs holding the room, direct messages to all', () => {
		const a = new TabPort();
		const b = new TabPort();
		openHub(a, b);
		hub.receive(a, msg({ type: 'join', id: 1, room: 'ra' }));
		hub.receive(b, msg({ type: 'join', id: 1, room: 'rb' }));
		for (const j of link().ofType('join')) link().server({ type: 'ack', id: j.id });
		link().server({ type: 'event', room: 'ra', event: 'x', data: 1 });
		link().server({ type: 'event', room: 'rb', event: 'x', data: 2 });
		link().server({ type: 'event', room: 'gone', event: 'x', data: 3 });
		link().server({ type: 'event', event: 'direct', data: 4 });
		expect(a.msgs('event').map((m) => m.data)).toEqual([1, 4]);
		expect(b.msgs('event').map((m) => m.data)).toEqual([2, 4]);
	});

	it('leaves upstream only when the last tab leaves', () => {
		const a = new TabPort();
		const b = new TabPort();
		openHub(a, b);
		hub.receive(a, msg({ type: 'join', id: 1, room: 'r' }));
		link().server({ type: 'ack', id: link().ofType('join')[0]!.id });
		hub.receive(b, msg({ type: 'join', id: 1, room: 'r' }));
		hub.receive(a, msg({ type: 'leave', id: 2, room: 'r' }));
		expect(link().ofType('leave')).toHaveLength(0);
		expect(a.msgs('ack').at(-1)).toEqual({ type: 'ack', id: 2 });
		hub.receive(b, msg({ type: 'leave', id: 7, room: 'r' }));
		const up = link().ofType('leave');
		expect(up).toHaveLength(1);
		link().server({ type: 'ack', id: up[0]!.id });
		expect(b.msgs('ack').at(-1)).toEqual({ type: 'ack', id: 7 });
	});

	it('a tab that says bye leaves the rooms no other tab holds', () => {
		const a = new TabPort();
		const b = new TabPort();
		openHub(a, b);
		hub.receive(a, msg({ type: 'join', id: 1, room: 'only-a' }));
		hub.receive(a, msg({ type: 'join', id: 2, room: 'both' }));
		hub.receive(b, msg({ type: 'join', id: 1, room: 'both' }));
		for (const j of link().ofType('join')) link().server({ type: 'ack', id: j.id });
		hub.receive(a, { t: 'bye' });
		expect(link().ofType('leave').map((m) => (m as { room: string }).room)).toEqual(['only-a']);
		expect(hub.rooms()).toEqual({ both: 1 });
		// Messages from a gone tab are ignored until it says hello again.
		hub.receive(a, msg({ type: 'join', id: 3, room: 'x' }));
		expect(link().ofType('join')).toHaveLength(2);
	});

	it('drops tabs that stop beating after the heartbeat timeout', () => {
		const a = new TabPort();
		const b = new TabPort();
		openHub(a, b);
		hub.receive(a, msg({ type: 'join', id: 1, room: 'r' }));
		link().server({ type: 'ack', id: link().ofType('join')[0]!.id });
		for (let t = 0; t < 40_000; t += 5000) {
			clock.advance(5000);
			hub.receive(b, { t: 'hb' });
		}
		expect(hub.tabs).toBe(1);
		expect(link().ofType('leave')).toHaveLength(1);
	});

	it('closes the socket when the last tab is gone, and opens a new one for the next tab', () => {
		const a = new TabPort();
		openHub(a);
		hub.receive(a, { t: 'bye' });
		expect(link().closed).toBe(1);
		expect(hub.link).toBeUndefined();
		const b = new TabPort();
		hub.receive(b, hello());
		expect(links).toHaveLength(2);
	});

	it('re-joins held rooms itself after a reconnect and forwards the state to tabs', () => {
		const a = new TabPort();
		const b = new TabPort();
		openHub(a, b);
		hub.receive(a, msg({ type: 'join', id: 1, room: 'r', meta: { n: 1 } }));
		link().server({ type: 'ack', id: link().ofType('join')[0]!.id });
		hub.receive(b, msg({ type: 'rpc', id: 4, method: 'm', data: null }));
		link().setState({ state: 'reconnecting', attempt: 0, delay: 100 });
		expect(b.got.at(-1)).toEqual({ t: 'state', info: { state: 'reconnecting', attempt: 0, delay: 100 } });
		link().sent = [];
		link().welcome({ session: 'S2' });
		expect(link().ofType('join')).toEqual([{ type: 'join', id: expect.any(Number), room: 'r', meta: { n: 1 } }]);
		// The tab's own re-join (sent on welcome) waits for that join instead of sending another.
		hub.receive(a, msg({ type: 'join', id: 2, room: 'r', meta: { n: 1 } }));
		expect(link().ofType('join')).toHaveLength(1);
		link().server({ type: 'ack', id: link().ofType('join')[0]!.id });
		expect(a.msgs('ack').at(-1)).toEqual({ type: 'ack', id: 2 });
		// A reply for the old socket's request id is not routed anywhere.
		link().server({ type: 'reply', id: 2, data: 'stale' });
		expect(b.msgs('reply')).toHaveLength(0);
	});

	it('re-joins with since from the acks and events it forwarded, and passes recovered on to the tabs', () => {
		const a = new TabPort();
		const b = new TabPort();
		openHub(a, b);
		hub.receive(a, msg({ type: 'join', id: 1, room: 'h' }));
		link().server({ type: 'ack', id: link().ofType('join')[0]!.id, seq: 40, epoch: 'E' });
		expect(a.msgs('ack')).toEqual([{ type: 'ack', id: 1, seq: 40, epoch: 'E' }]);
		// First reconnect: no event seen, the ack's position is the since.
		link().setState({ state: 'reconnecting', attempt: 0, delay: 100 });
		link().sent = [];
		link().welcome({ session: 'S2' });
		expect(link().ofType('join')).toEqual([{ type: 'join', id: expect.any(Number), room: 'h', since: { seq: 40, epoch: 'E' } }]);
		link().server({ type: 'ack', id: link().ofType('join')[0]!.id, seq: 42, epoch: 'E', recovered: true });
		const ev = (seq: number) => ({ type: 'event', room: 'h', event: 'm', data: seq, seq, epoch: 'E' });
		link().server(ev(41));
		link().server(ev(41)); // a repeat is not forwarded
		link().server(ev(42));
		expect(a.msgs('event').map((m) => m.seq)).toEqual([41, 42]);
		// The tabs' own re-joins with since (the last event they got), once the upstream join is answered: position and recovered.
		hub.receive(a, msg({ type: 'join', id: 2, room: 'h', since: { seq: 42, epoch: 'E' } }));
		hub.receive(b, msg({ type: 'join', id: 7, room: 'h' }));
		expect(a.msgs('ack').at(-1)).toEqual({ type: 'ack', id: 2, seq: 42, epoch: 'E', recovered: true });
		expect(b.msgs('ack').at(-1)).toEqual({ type: 'ack', id: 7, seq: 42, epoch: 'E' });
		// Second reconnect: since is the last event forwarded; recovered:false reaches a waiting tab.
		link().setState({ state: 'reconnecting', attempt: 0, delay: 100 });
		link().sent = [];
		link().welcome({ session: 'S3' });
		expect(link().ofType('join')[0]).toMatchObject({ room: 'h', since: { seq: 42, epoch: 'E' } });
		hub.receive(a, msg({ type: 'join', id: 3, room: 'h', since: { seq: 42, epoch: 'E' } }));
		link().server({ type: 'ack', id: link().ofType('join')[0]!.id, seq: 900, epoch: 'F', recovered: false });
		expect(a.msgs('ack').at(-1)).toEqual({ type: 'ack', id: 3, seq: 900, epoch: 'F', recovered: false });
		link().setState({ state: 'reconnecting', attempt: 0, delay: 100 });
		link().sent = [];
		link().welcome({ session: 'S4' });
		expect(link().ofType('join')[0]).toMatchObject({ room: 'h', since: { seq: 900, epoch: 'F' } });
	});

	it("starts from the first tab's since, and routes history pages by id", () => {
		const a = new TabPort();
		openHub(a);
		hub.receive(a, msg({ type: 'join', id: 1, room: 'h', since: { seq: 5, epoch: 'E' } }));
		expect(link().ofType('join')[0]).toMatchObject({ room: 'h', since: { seq: 5, epoch: 'E' } });
		hub.receive(a, msg({ type: 'history', id: 9, room: 'h', limit: 10 }));
		const up = link().ofType('history')[0]!;
		expect(up).toMatchObject({ room: 'h', limit: 10 });
		link().server({ type: 'history', id: up.id, room: 'h', seq: 7, epoch: 'E', events: [] });
		expect(a.msgs('history')).toEqual([{ type: 'history', id: 9, room: 'h', seq: 7, epoch: 'E', events: [] }]);
	});

	it('asks the most recently seen tab that can mint, and fails over when it goes', async () => {
		const a = new TabPort();
		const b = new TabPort();
		const c = new TabPort();
		hub.receive(a, hello(true));
		clock.advance(10);
		hub.receive(b, hello(true));
		clock.advance(10);
		hub.receive(c, hello(false));
		const l = link();
		const p1 = l.mint!();
		const req = b.got.find((m) => m.t === 'mint') as { t: 'mint'; req: number };
		expect(req).toBeDefined();
		expect(a.got.some((m) => m.t === 'mint')).toBe(false);
		hub.receive(b, { t: 'minted', req: req.req, url: 'ws://node.test/_/connect/k' });
		await expect(p1).resolves.toBe('ws://node.test/_/connect/k');
		const p2 = l.mint!();
		hub.receive(b, { t: 'bye' });
		await expect(p2).rejects.toThrow(/went away/);
		const p3 = l.mint!();
		const req3 = a.got.find((m) => m.t === 'mint') as { t: 'mint'; req: number };
		hub.receive(a, { t: 'minted', req: req3.req, error: 'HTTP 500' });
		await expect(p3).rejects.toThrow(/500/);
	});

	it('copies an echo:false publish to the other tabs, since they share the session', () => {
		const a = new TabPort();
		const b = new TabPort();
		const c = new TabPort();
		openHub(a, b, c);
		hub.receive(a, msg({ type: 'join', id: 1, room: 'r' }));
		link().server({ type: 'ack', id: link().ofType('join')[0]!.id });
		hub.receive(b, msg({ type: 'join', id: 1, room: 'r' }));
		hub.receive(a, msg({ type: 'publish', id: 2, room: 'r', event: 'chat', data: 'hi', echo: false }));
		expect(link().ofType('publish')).toHaveLength(1);
		expect(b.msgs('event')).toEqual([{ type: 'event', room: 'r', event: 'chat', data: 'hi', from: 'S' }]);
		expect(a.msgs('event')).toHaveLength(0);
		expect(c.msgs('event')).toHaveLength(0);
	});

	it('answers unavailable for requests while the socket is down', () => {
		const a = new TabPort();
		hub.receive(a, hello());
		hub.receive(a, msg({ type: 'rpc', id: 3, method: 'm', data: null }));
		expect(a.msgs('error')).toEqual([{ type: 'error', id: 3, code: 'unavailable', message: 'not connected' }]);
	});

	it('delivers traffic of rooms auto-joined by the node to every tab', () => {
		const a = new TabPort();
		const b = new TabPort();
		hub.receive(a, hello());
		hub.receive(b, hello());
		link().welcome({ rooms: ['auto'] });
		link().server({ type: 'session:list', room: 'auto', sessions: [] });
		expect(a.msgs('session:list')).toHaveLength(1);
		expect(b.msgs('session:list')).toHaveLength(1);
		hub.receive(a, msg({ type: 'join', id: 1, room: 'auto' }));
		expect(link().ofType('join')).toHaveLength(0);
		expect(a.msgs('ack')).toEqual([{ type: 'ack', id: 1 }]);
	});
});

describe('Hub: a tab joining behind the room position catches up from history', () => {
	const ev = (seq: number, epoch = 'E') => ({ type: 'event', room: 'h', event: 'm', data: seq, seq, epoch });
	const stored = (seq: number) => ({ seq, event: 'm', data: seq, time: 1 });
	const page = (id: unknown, seqs: number[], epoch = 'E') => ({ type: 'history', id, room: 'h', seq: 99, epoch, events: seqs.map(stored) });
	const seqs = (t: TabPort) => t.msgs('event').map((m) => m.seq);

	/** Tab a holds room h at position {at, E}: joined at 40, then the events 41..at. */
	function held(at: number, ...tabs: TabPort[]) {
		const a = new TabPort();
		openHub(a, ...tabs);
		hub.receive(a, msg({ type: 'join', id: 1, room: 'h' }));
		link().server({ type: 'ack', id: link().ofType('join')[0]!.id, seq: 40, epoch: 'E' });
		link().server({ type: 'session:list', room: 'h', sessions: [{ session: 'S', user: 'u', meta: {}, connected_at: 1 }] });
		for (let s = 41; s <= at; s++) link().server(ev(s));
		for (const t of tabs) t.clear();
		return a;
	}

	it('reads (since, P] for that tab only and sends it, in order, before the live events held meanwhile', () => {
		const b = new TabPort();
		const a = held(45, b);
		hub.receive(b, msg({ type: 'join', id: 3, room: 'h', since: { seq: 42, epoch: 'E' } }));
		// From since itself (proof that nothing after it was removed) up to P: at most 4 events.
		const q = link().ofType('history');
		expect(q).toEqual([{ type: 'history', id: expect.any(Number), room: 'h', after: 41, limit: 4 }]);
		expect(hub.rooms()).toEqual({ h: 2 });
		// Live traffic while the page is read: held for b, delivered to a.
		link().server(ev(46));
		hub.receive(a, msg({ type: 'publish', id: 2, room: 'h', event: 'm', data: 'local', echo: false }));
		link().server({ type: 'session:connected', room: 'h', session: 'T', user: 'v', meta: {}, count: 2 });
		expect(b.msgs()).toEqual([]);
		link().server(page(q[0]!.id, [42, 43, 44, 45]));
		expect(b.msgs().map((m) => m.type)).toEqual(['ack', 'session:list', 'event', 'event', 'event', 'event', 'event']);
		expect(b.msgs('ack')).toEqual([{ type: 'ack', id: 3, seq: 45, epoch: 'E', recovered: true }]);
		expect(b.msgs('session:list')[0]).toMatchObject({ sessions: [{ session: 'S' }, { session: 'T' }] });
		expect(b.msgs('event')).toEqual([
			{ type: 'event', room: 'h', event: 'm', data: 43, seq: 43, epoch: 'E' },
			ev(44),
			ev(45),
			ev(46),
			{ type: 'event', room: 'h', event: 'm', data: 'local', from: 'S' }
		]);
		// a saw every event once, no replay.
		expect(seqs(a)).toEqual([41, 42, 43, 44, 45, 46]);
		link().server(ev(47));
		expect(seqs(b).at(-1)).toBe(47);
		expect(seqs(a).at(-1)).toBe(47);
		expect(link().ofType('join')).toHaveLength(1);
	});

	it('pages on from the last event read, stops at P, and keeps `from`', () => {
		const b = new TabPort();
		held(50, b);
		hub.receive(b, msg({ type: 'join', id: 3, room: 'h', since: { seq: 41, epoch: 'E' } }));
		let q = link().ofType('history');
		expect(q.at(-1)).toMatchObject({ after: 40, limit: 10 });
		link().server({ ...page(q.at(-1)!.id, [41, 43]), events: [stored(41), { ...stored(43), from: 's9' }] }); // holes: other rooms' sequences
		q = link().ofType('history');
		expect(q).toHaveLength(2);
		expect(q.at(-1)).toMatchObject({ after: 42, limit: 8 });
		link().server(page(q.at(-1)!.id, [43, 47, 49]));
		q = link().ofType('history');
		expect(q.at(-1)).toMatchObject({ after: 48, limit: 2 });
		expect(b.msgs()).toEqual([]);
		// The page goes past P (51 came later, live): only up to P is replayed.
		link().server(page(q.at(-1)!.id, [49, 50, 51]));
		expect(b.msgs('ack')).toEqual([{ type: 'ack', id: 3, seq: 50, epoch: 'E', recovered: true }]);
		expect(seqs(b)).toEqual([43, 47, 49, 50]);
		expect(b.msgs('event')[0]).toMatchObject({ seq: 43, from: 's9' });
		expect(link().ofType('history')).toHaveLength(3);
	});

	it('acks recovered:false, with P and the live events from there, when the history no longer reaches back to since', () => {
		const b = new TabPort();
		held(45, b);
		hub.receive(b, msg({ type: 'join', id: 3, room: 'h', since: { seq: 42, epoch: 'E' } }));
		link().server(ev(46));
		// since (42) was removed: the first stored event is later.
		link().server(page(link().ofType('history')[0]!.id, [44, 45, 46]));
		expect(b.msgs('ack')).toEqual([{ type: 'ack', id: 3, seq: 45, epoch: 'E', recovered: false }]);
		expect(seqs(b)).toEqual([46]);
	});

	it.each([
		['the history was reset (another epoch in the page)', (id: unknown) => page(id, [42, 43, 44, 45], 'F')],
		['the node could not read it', (id: unknown) => ({ type: 'error', id, code: 'unavailable', message: 'history is unavailable: retry shortly' })],
		['nothing is stored after since', (id: unknown) => page(id, [42])]
	])('acks recovered:false when %s', (_what, answer) => {
		const b = new TabPort();
		held(45, b);
		hub.receive(b, msg({ type: 'join', id: 3, room: 'h', since: { seq: 42, epoch: 'E' } }));
		link().server(answer(link().ofType('history')[0]!.id));
		expect(b.msgs('ack')).toEqual([{ type: 'ack', id: 3, seq: 45, epoch: 'E', recovered: false }]);
		expect(seqs(b)).toEqual([]);
		expect(hub.rooms()).toEqual({ h: 2 });
	});

	it('acks recovered:false at once for a since of another epoch, or too low to prove (0, 1)', () => {
		const b = new TabPort();
		held(45, b);
		hub.receive(b, msg({ type: 'join', id: 3, room: 'h', since: { seq: 42, epoch: 'OLD' } }));
		hub.receive(b, msg({ type: 'join', id: 4, room: 'h', since: { seq: 1, epoch: 'E' } }));
		expect(link().ofType('history')).toHaveLength(0);
		expect(b.msgs('ack')).toEqual([
			{ type: 'ack', id: 3, seq: 45, epoch: 'E', recovered: false },
			{ type: 'ack', id: 4, seq: 45, epoch: 'E', recovered: false }
		]);
	});

	it('behaves as before for a since at or ahead of P: no read, recovered true', () => {
		const b = new TabPort();
		held(45, b);
		hub.receive(b, msg({ type: 'join', id: 3, room: 'h', since: { seq: 45, epoch: 'E' } }));
		hub.receive(b, msg({ type: 'join', id: 4, room: 'h', since: { seq: 47, epoch: 'E' } }));
		expect(link().ofType('history')).toHaveLength(0);
		expect(b.msgs('ack')).toEqual([
			{ type: 'ack', id: 3, seq: 45, epoch: 'E', recovered: true },
			{ type: 'ack', id: 4, seq: 45, epoch: 'E', recovered: true }
		]);
	});

	it('forgets a catch-up whose tab leaves or goes away, and leaves the room with its last tab', () => {
		const b = new TabPort();
		const c = new TabPort();
		const a = held(45, b, c);
		hub.receive(b, msg({ type: 'join', id: 3, room: 'h', since: { seq: 42, epoch: 'E' } }));
		hub.receive(c, msg({ type: 'join', id: 3, room: 'h', since: { seq: 43, epoch: 'E' } }));
		const [qb, qc] = link().ofType('history');
		hub.receive(b, msg({ type: 'leave', id: 4, room: 'h' }));
		expect(b.msgs('ack')).toEqual([{ type: 'ack', id: 4 }]);
		hub.receive(c, { t: 'bye' });
		hub.receive(a, msg({ type: 'leave', id: 5, room: 'h' }));
		expect(link().ofType('leave')).toHaveLength(1);
		link().server(page(qb!.id, [42, 43, 44, 45]));
		link().server(page(qc!.id, [43, 44, 45]));
		expect(b.msgs('event')).toEqual([]);
		expect(c.msgs('event')).toEqual([]);
	});

	it('keeps the room joined while its only tab is catching up', () => {
		const b = new TabPort();
		const a = held(45, b);
		hub.receive(b, msg({ type: 'join', id: 6, room: 'h', since: { seq: 42, epoch: 'E' } }));
		hub.receive(a, msg({ type: 'leave', id: 2, room: 'h' }));
		expect(link().ofType('leave')).toHaveLength(0);
		expect(hub.rooms()).toEqual({ h: 1 });
		link().server(page(link().ofType('history')[0]!.id, [42, 43, 44, 45]));
		expect(seqs(b)).toEqual([43, 44, 45]);
		hub.receive(b, msg({ type: 'leave', id: 7, room: 'h' }));
		expect(link().ofType('leave')).toHaveLength(1);
	});

	it('drops a catch-up when the socket drops; the tab re-sent join after the welcome is recovered by the node', () => {
		const b = new TabPort();
		const a = held(45, b);
		hub.receive(b, msg({ type: 'join', id: 3, room: 'h', since: { seq: 42, epoch: 'E' } }));
		link().setState({ state: 'reconnecting', attempt: 0, delay: 100 });
		link().sent = [];
		link().welcome({ session: 'S2' });
		expect(link().ofType('join')).toEqual([{ type: 'join', id: expect.any(Number), room: 'h', since: { seq: 45, epoch: 'E' } }]);
		hub.receive(a, msg({ type: 'join', id: 2, room: 'h', since: { seq: 45, epoch: 'E' } }));
		// b re-sends its join too (its position did not move): it waits for the upstream ack, then catches up.
		hub.receive(b, msg({ type: 'join', id: 4, room: 'h', since: { seq: 42, epoch: 'E' } }));
		link().server({ type: 'ack', id: link().ofType('join')[0]!.id, seq: 47, epoch: 'E', recovered: true });
		link().server(ev(46)); // the node's replay of (45, 47] for the worker
		link().server(ev(47));
		expect(a.msgs('ack').at(-1)).toEqual({ type: 'ack', id: 2, seq: 47, epoch: 'E', recovered: true });
		expect(seqs(a).slice(-2)).toEqual([46, 47]);
		expect(b.msgs('ack')).toEqual([]);
		const q = link().ofType('history');
		expect(q).toEqual([{ type: 'history', id: expect.any(Number), room: 'h', after: 41, limit: 4 }]);
		link().server(page(q[0]!.id, [42, 43, 44, 45]));
		expect(b.msgs('ack')).toEqual([{ type: 'ack', id: 4, seq: 45, epoch: 'E', recovered: true }]);
		expect(seqs(b)).toEqual([43, 44, 45, 46, 47]);
	});

	it('catches up a tab that joined while the upstream join (without since) was on its way', () => {
		const a = new TabPort();
		const b = new TabPort();
		openHub(a, b);
		hub.receive(a, msg({ type: 'join', id: 1, room: 'h' }));
		hub.receive(b, msg({ type: 'join', id: 1, room: 'h', since: { seq: 30, epoch: 'E' } }));
		link().server({ type: 'ack', id: link().ofType('join')[0]!.id, seq: 33, epoch: 'E' });
		expect(a.msgs('ack')).toEqual([{ type: 'ack', id: 1, seq: 33, epoch: 'E' }]);
		link().server({ type: 'session:list', room: 'h', sessions: [] });
		link().server(ev(34));
		link().server(page(link().ofType('history')[0]!.id, [30, 32, 33]));
		expect(b.msgs('ack')).toEqual([{ type: 'ack', id: 1, seq: 33, epoch: 'E', recovered: true }]);
		expect(seqs(b)).toEqual([32, 33, 34]);
		expect(seqs(a)).toEqual([34]);
	});
});

/** A synchronous in-memory MessagePort pair between a tab and the hub. */
function channel(h: Hub): PortLike & { hubSide: HubPort } {
	let listener: ((ev: { data: unknown }) => void) | undefined;
	const tab: PortLike & { hubSide: HubPort } = {
		addEventListener: (_type, fn) => {
			listener = fn;
		},
		postMessage: (m: unknown) => h.receive(tab.hubSide, structuredClone(m) as TabMessage),
		hubSide: { postMessage: (m: HubMessage) => listener?.({ data: structuredClone(m) }) }
	};
	return tab;
}

describe('Hub with tabs (WorkerLink) and a real Connection', () => {
	beforeEach(() => FakeWebSocket.reset());

	function setup() {
		const h = new Hub({
			clock,
			createLink: (config, mint) => new Connection({ ...config, ...(mint ? { mint } : {}), WebSocket: FakeWebSocket, clock, random: () => 0.5, wake: null })
		});
		const tab = (mint?: () => Promise<string>) =>
			new RoomcastClient<{ chat: string }>({
				link: new WorkerLink(channel(h), { url: 'ws://node.test/chat', ...(mint ? { mint } : {}) }, { clock, window: null, locks: null })
			});
		return { h, tab };
	}

	it('shares one socket; a second tab joining gets presence at once; closing a tab leaves only its rooms', async () => {
		const { h, tab } = setup();
		const t1 = tab();
		const t2 = tab();
		await flush();
		expect(FakeWebSocket.instances).toHaveLength(1);
		const ws = FakeWebSocket.last;
		ws.welcome({ session: 'S' });
		expect(t1.state).toBe('open');
		expect(t2.session).toBe('S');

		const j1 = t1.join('lobby');
		const up = ws.ofType('join');
		expect(up).toHaveLength(1);
		ws.serverSend({ type: 'ack', id: up[0]!.id }, { type: 'session:list', room: 'lobby', sessions: [{ session: 'S', user: 'u', meta: {}, connected_at: 1 }, { session: 'T', user: 'v', meta: {}, connected_at: 2 }] });
		await j1;
		expect(t1.count('lobby')).toBe(2);

		await t2.join('lobby');
		expect(ws.ofType('join')).toHaveLength(1);
		expect(t2.sessions('lobby').map((s) => s.session)).toEqual(['S', 'T']);

		const got: string[] = [];
		t2.on('chat', (d) => got.push(d));
		ws.serverSend({ type: 'event', room: 'lobby', event: 'chat', data: 'hello' });
		expect(got).toEqual(['hello']);

		const jm = t1.join('mine');
		ws.serverSend({ type: 'ack', id: ws.ofType('join')[1]!.id });
		await jm;
		expect(ws.ofType('join').map((j) => j.room)).toEqual(['lobby', 'mine']);
		t1.close();
		expect(ws.ofType('leave').map((j) => j.room)).toEqual(['mine']);
		expect(h.rooms()).toEqual({ lobby: 1 });
		t2.close();
		expect(ws.closedWith?.code).toBe(1000);
	});

	it('reconnects once for all tabs with a URL minted by a tab, and re-lists presence', async () => {
		let n = 0;
		const { tab } = setup();
		const t1 = tab(async () => `ws://node.test/_/connect/k${++n}`);
		const t2 = tab(async () => `ws://node.test/_/connect/k${++n}`);
		for (let i = 0; i < 5 && FakeWebSocket.instances.length === 0; i++) await flush();
		expect(FakeWebSocket.instances.map((w) => w.url)).toEqual(['ws://node.test/_/connect/k1']);
		FakeWebSocket.last.welcome({ session: 'S' });
		const p1 = t1.join('r');
		FakeWebSocket.last.serverSend({ type: 'ack', id: FakeWebSocket.last.ofType('join')[0]!.id });
		await p1;
		await t2.join('r');

		FakeWebSocket.last.serverClose(1006);
		expect(t1.state).toBe('reconnecting');
		expect(t2.state).toBe('reconnecting');
		clock.advance(250);
		for (let i = 0; i < 5 && FakeWebSocket.instances.length === 1; i++) await flush();
		expect(FakeWebSocket.instances).toHaveLength(2);
		const ws2 = FakeWebSocket.last;
		expect(ws2.url).toBe('ws://node.test/_/connect/k2');
		ws2.welcome({ session: 'S2' });
		const joins = ws2.ofType('join');
		expect(joins.map((j) => j.room)).toEqual(['r']);
		ws2.serverSend({ type: 'ack', id: joins[0]!.id }, { type: 'session:list', room: 'r', sessions: [{ session: 'S2', user: 'u', meta: {}, connected_at: 9 }] });
		expect(t1.sessions('r').map((s) => s.session)).toEqual(['S2']);
		expect(t2.sessions('r').map((s) => s.session)).toEqual(['S2']);
		expect(t2.session).toBe('S2');
	});

	it('recovers history rooms for every tab after a reconnect: no gap, no repeat, recovered notified', async () => {
		const { tab } = setup();
		const t1 = tab();
		const t2 = tab();
		await flush();
		const ws = FakeWebSocket.last;
		ws.welcome({ session: 'S' });
		const got1: number[] = [];
		const got2: number[] = [];
		t1.on('chat', (_d, c) => got1.push(c.seq!));
		t2.on('chat', (_d, c) => got2.push(c.seq!));
		const rec: unknown[] = [];
		t1.listen('recovered', (r) => rec.push(structuredClone(r)));
		const j = t1.join('h');
		ws.serverSend({ type: 'ack', id: ws.ofType('join')[0]!.id, seq: 10, epoch: 'E' });
		await j;
		await t2.join('h');
		expect(t2.position('h')).toEqual({ seq: 10, epoch: 'E' });
		const ev = (seq: number) => ({ type: 'event', room: 'h', event: 'chat', data: String(seq), seq, epoch: 'E' });
		ws.serverSend(ev(11), ev(12));

		ws.serverClose(1006);
		clock.advance(20_000);
		for (let i = 0; i < 5 && FakeWebSocket.instances.length === 1; i++) await flush();
		const ws2 = FakeWebSocket.last;
		ws2.welcome({ session: 'S2' });
		const joins = ws2.ofType('join');
		expect(joins).toEqual([{ type: 'join', id: expect.any(Number), room: 'h', since: { seq: 12, epoch: 'E' } }]);
		ws2.serverSend({ type: 'ack', id: joins[0]!.id, seq: 14, epoch: 'E', recovered: true }, ev(12), ev(13), ev(14), ev(15));
		await flush();
		expect(got1).toEqual([11, 12, 13, 14, 15]);
		expect(got2).toEqual([11, 12, 13, 14, 15]);
		expect(rec).toEqual([{ room: 'h', recovered: true, position: expect.objectContaining({ epoch: 'E' }) }]);
		expect(t1.position('h')).toEqual({ seq: 15, epoch: 'E' });
		expect(ws2.ofType('join')).toHaveLength(1);
	});

	it('a tab back from the back/forward cache re-joins behind the worker and gets what it missed, then live events, once', async () => {
		const h = new Hub({
			clock,
			createLink: (config) => new Connection({ ...config, WebSocket: FakeWebSocket, clock, random: () => 0.5, wake: null })
		});
		const page = new Map<string, (ev: { persisted?: boolean }) => void>();
		const win = { addEventListener: (t: string, f: (ev: { persisted?: boolean }) => void) => page.set(t, f), removeEventListener: () => {} };
		const t1 = new RoomcastClient<{ chat: string }>({ link: new WorkerLink(channel(h), { url: 'ws://node.test/chat' }, { clock, window: null, locks: null }) });
		const t2 = new RoomcastClient<{ chat: string }>({ link: new WorkerLink(channel(h), { url: 'ws://node.test/chat' }, { clock, window: win, locks: null }) });
		await flush();
		const ws = FakeWebSocket.last;
		ws.welcome({ session: 'S' });
		const got1: number[] = [];
		const got2: number[] = [];
		t1.on('chat', (_d, c) => got1.push(c.seq!));
		t2.on('chat', (_d, c) => got2.push(c.seq!));
		const rec: unknown[] = [];
		t2.listen('recovered', (r) => rec.push(structuredClone(r)));
		const j = t1.join('h');
		ws.serverSend({ type: 'ack', id: ws.ofType('join')[0]!.id, seq: 10, epoch: 'E' });
		await j;
		await t2.join('h');
		const ev = (seq: number) => ({ type: 'event', room: 'h', event: 'chat', data: String(seq), seq, epoch: 'E' });
		ws.serverSend(ev(11), ev(12));

		page.get('pagehide')!({ persisted: true });
		expect(h.rooms()).toEqual({ h: 1 });
		ws.serverSend(ev(13), ev(15));
		page.get('pageshow')!({ persisted: true });
		await flush();
		expect(ws.ofType('join')).toHaveLength(1);
		const q = ws.ofType('history');
		expect(q).toEqual([{ type: 'history', id: expect.any(Number), room: 'h', after: 11, limit: 4 }]);
		ws.serverSend(ev(16));
		const stored = (seq: number) => ({ seq, event: 'chat', data: String(seq), time: 1 });
		ws.serverSend({ type: 'history', id: q[0]!.id, room: 'h', seq: 16, epoch: 'E', events: [12, 13, 15].map(stored) });
		await flush();
		ws.serverSend(ev(17));
		expect(got1).toEqual([11, 12, 13, 15, 16, 17]);
		expect(got2).toEqual([11, 12, 13, 15, 16, 17]);
		expect(rec).toEqual([{ room: 'h', recovered: true, position: { seq: 12, epoch: 'E' } }]);
		expect(t2.position('h')).toEqual({ seq: 17, epoch: 'E' });
	});

	it('carries fatal errors to tabs as RoomcastErrors', async () => {
		const { tab } = setup();
		const t1 = tab();
		await flush();
		FakeWebSocket.last.welcome();
		const p = t1.rpc('x');
		FakeWebSocket.last.serverClose(4003, 'forbidden');
		const err = await p.catch((e: unknown) => e);
		expect(err).toMatchObject({ name: 'RoomcastError', code: 'forbidden', closeCode: 4003 });
		expect(t1.state).toBe('closed');
	});
});

// Compile-time check: the DOM's SharedWorker fits the sharedWorker option.
export const acceptsDomSharedWorker: (f: () => SharedWorker) => import('../src/client.js').ClientOptions = (f) => ({ sharedWorker: f });
