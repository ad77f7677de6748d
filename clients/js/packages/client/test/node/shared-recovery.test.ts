/**
 * The SharedWorker hub against a real roomcast-node (embedded NATS with
 * JetStream, history rooms): tabs are RoomcastClients over WorkerLinks, the
 * hub is the worker script's startHub, and they talk over real MessagePorts
 * (node:worker_threads), so every message is cloned and asynchronous as in a
 * browser. The hub's socket is a real WebSocket (ws) whose `history` answers
 * the test can hold back, as a slow history read on the node would.
 *
 * A tab that leaves (pagehide: bye) while another tab keeps the room, and
 * comes back (pageshow from the back/forward cache) re-joins with its own
 * position, behind the worker's.
 */
import { connect, headers, type NatsConnection } from 'nats';
import { MessageChannel, type MessagePort } from 'node:worker_threads';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import WebSocket from 'ws';
import { startNode, type TestNode } from '../../../../e2e/node.js';
import { RoomcastClient, type RecoveredInfo } from '../../src/client.js';
import type { WebSocketLike } from '../../src/connection.js';
import type { Hub, HubPort } from '../../src/shared/hub.js';
import { WorkerLink, type EventTargetLike, type PortLike } from '../../src/shared/port-link.js';
import { startHub } from '../../src/worker.js';

type Events = { msg: { n: number } };

/** The hub's socket: a ws WebSocket whose `history` answers wait while `held` is set. */
class GatedSocket implements WebSocketLike {
	static held: Array<() => void> | undefined;
	/** Every message the hubs sent, parsed. */
	static sent: Array<Record<string, unknown>> = [];
	static hold(): void {
		GatedSocket.held ??= [];
	}
	static release(): void {
		const held = GatedSocket.held ?? [];
		GatedSocket.held = undefined;
		for (const f of held) f();
	}

	readonly #ws: WebSocket;
	onopen: ((ev: unknown) => void) | null = null;
	onmessage: ((ev: { data: unknown }) => void) | null = null;
	onclose: ((ev: { code: number; reason: string }) => void) | null = null;
	onerror: ((ev: unknown) => void) | null = null;

	constructor(url: string) {
		this.#ws = new WebSocket(url);
		this.#ws.onopen = (ev) => this.onopen?.(ev);
		this.#ws.onclose = (ev) => this.onclose?.({ code: ev.code, reason: ev.reason });
		this.#ws.onerror = (ev) => this.onerror?.(ev);
		this.#ws.onmessage = (ev) => {
			const pass: string[] = [];
			for (const line of String(ev.data).split('\n')) {
				const held = GatedSocket.held;
				if (held && line.startsWith('{"type":"history"')) held.push(() => this.onmessage?.({ data: line }));
				else pass.push(line);
			}
			if (pass.length) this.onmessage?.({ data: pass.join('\n') });
		};
	}

	get readyState(): number {
		return this.#ws.readyState;
	}

	send(data: string): void {
		GatedSocket.sent.push(JSON.parse(data) as Record<string, unknown>);
		this.#ws.send(data);
	}

	close(code?: number, reason?: string): void {
		this.#ws.close(code, reason);
	}
}

/** A fake page: pagehide/pageshow as the back/forward cache fires them. */
class Page implements EventTargetLike {
	#fns = new Map<string, (ev: { persisted?: boolean }) => void>();
	addEventListener(type: string, fn: (ev: { persisted?: boolean }) => void): void {
		this.#fns.set(type, fn);
	}
	removeEventListener(type: string): void {
		this.#fns.delete(type);
	}
	fire(type: 'pagehide' | 'pageshow'): void {
		this.#fns.get(type)?.({ persisted: true });
	}
}

interface Tab {
	rc: RoomcastClient<Events>;
	page: Page;
	/** [n, seq, epoch] of every msg event, in order. */
	got: Array<[number, number, string]>;
	recovered: RecoveredInfo[];
}

let node: TestNode;
let nc: NatsConnection;
let hub: Hub;
let connectHub: (port: HubPort & { onmessage: ((ev: { data: unknown }) => void) | null; start(): void }) => void;
const cleanups: Array<() => void> = [];

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until<T>(what: string, f: () => T, timeout = 10_000): Promise<NonNullable<T>> {
	const end = Date.now() + timeout;
	for (;;) {
		const v = f();
		if (v) return v;
		if (Date.now() > end) throw new Error(`${what}: not after ${timeout} ms`);
		await sleep(10);
	}
}

beforeAll(async () => {
	node = await startNode({
		routes: [{ path: '/chat', auth: 'public', allow: ['chat.*', 'tiny.*'] }],
		config: 'history:\n  - rooms: "chat.>"\n    size: 2000\n    ttl: 10m\n  - rooms: "tiny.>"\n    size: 5\n    ttl: 10m\n'
	});
	nc = await connect({ servers: node.nats, name: 'shared-recovery-test' });
});

afterAll(async () => {
	await nc?.close();
	await node?.stop();
});

afterEach(() => {
	for (const f of cleanups.splice(0)) f();
	GatedSocket.release();
	GatedSocket.sent = [];
	vi.unstubAllGlobals();
});

/** A worker (one hub, one socket) for the test. */
function worker(): void {
	vi.stubGlobal('WebSocket', GatedSocket);
	const scope: Parameters<typeof startHub>[0] = { onconnect: null };
	hub = startHub(scope);
	connectHub = (port) => scope.onconnect!({ ports: [port] });
}

/** A tab of the worker: its own MessagePort pair, its own page. */
function tab(): Tab {
	const { port1, port2 } = new MessageChannel();
	const hubSide = {
		onmessage: null as ((ev: { data: unknown }) => void) | null,
		postMessage: (m: unknown) => port2.postMessage(m),
		start: () => port2.on('message', (data: unknown) => hubSide.onmessage?.({ data }))
	};
	connectHub(hubSide);
	const page = new Page();
	const rc = new RoomcastClient<Events>({
		link: new WorkerLink(portLike(port1), { url: `${node.ws}/chat` }, { window: page, locks: null })
	});
	const t: Tab = { rc, page, got: [], recovered: [] };
	rc.on('msg', (d, c) => t.got.push([d.n, c.seq!, c.epoch!]));
	rc.listen('recovered', (r) => t.recovered.push(r));
	cleanups.push(() => {
		rc.close();
		port1.close();
		port2.close();
	});
	return t;
}

function portLike(p: MessagePort): PortLike {
	return {
		postMessage: (m) => p.postMessage(m),
		addEventListener: (_type, fn) => p.on('message', (data: unknown) => fn({ data })),
		start: () => p.start()
	};
}

/** Publishes msg {n} for n in [from, to), in order, as a back-end does (a NATS publish to rc.room.<room>). */
async function publish(room: string, from: number, to: number): Promise<void> {
	const h = headers();
	h.set('Rc-Event', 'msg');
	for (let n = from; n < to; n++) nc.publish(`rc.room.${room}`, JSON.stringify({ n }), { headers: h });
	await nc.flush();
}

const ns = (t: Tab) => t.got.map(([n]) => n);
const range = (from: number, to: number) => Array.from({ length: to - from }, (_, i) => from + i);
const historyRequests = () => GatedSocket.sent.filter((m) => m.type === 'history');

/** Tabs a and b in room, both with the events 0..2; then b leaves for the back/forward cache. */
async function twoTabs(room: string): Promise<{ a: Tab; b: Tab }> {
	worker();
	const a = tab();
	const b = tab();
	await a.rc.join(room);
	await b.rc.join(room);
	await publish(room, 0, 3);
	await until('the first events in both tabs', () => a.got.length === 3 && b.got.length === 3);
	b.page.fire('pagehide');
	await until('b gone from the worker', () => hub.rooms()[room] === 1);
	return { a, b };
}

describe('SharedWorker hub against a real node: a tab re-joining behind the worker', () => {
	it('gets exactly the events it missed, in order, then the live ones, and recovered:true; the other tab sees nothing twice', async () => {
		const room = 'chat.rejoin';
		const { a, b } = await twoTabs(room);
		const since = b.rc.position(room)!;
		expect(since.seq).toBeGreaterThanOrEqual(2);
		await publish(room, 3, 23); // while b is away
		await until('a has the 20 events b missed', () => a.got.length === 23);

		GatedSocket.hold(); // the history read is slow: live events come first
		b.page.fire('pageshow');
		await until('the worker reads the history for b', () => historyRequests().length === 1);
		expect(historyRequests()[0]).toMatchObject({ room, after: since.seq - 1 });
		await publish(room, 23, 28); // live, while b catches up
		await until('a has the live events', () => a.got.length === 28);
		expect(b.got.length).toBe(3);
		await until('the history answer', () => GatedSocket.held?.length === 1);
		GatedSocket.release();

		await until('b has every event', () => b.got.length >= 28);
		await publish(room, 28, 30);
		await until('both have the last ones', () => a.got.length >= 30 && b.got.length >= 30);
		await sleep(100); // nothing more (repeats) comes
		expect(ns(a)).toEqual(range(0, 30));
		expect(ns(b)).toEqual(range(0, 30));
		expect(b.got).toEqual(a.got); // same seq and epoch for each
		for (let i = 1; i < b.got.length; i++) expect(b.got[i]![1]).toBeGreaterThan(b.got[i - 1]![1]);
		expect(b.recovered).toEqual([{ room, recovered: true, position: since }]);
		expect(a.recovered).toEqual([]);
		expect(b.rc.position(room)).toEqual(a.rc.position(room));
		expect(historyRequests()).toHaveLength(1);
		expect(GatedSocket.sent.filter((m) => m.type === 'join')).toHaveLength(1);
	});

	it('pages through more missed events than the node returns at once (1000 a page)', async () => {
		const room = 'chat.pages';
		const { a, b } = await twoTabs(room);
		const missed = 1_200;
		await publish(room, 3, 3 + missed);
		await until('a has the events b missed', () => a.got.length === 3 + missed);
		b.page.fire('pageshow');
		await until('b has every event', () => b.got.length >= 3 + missed);
		await publish(room, 3 + missed, 5 + missed);
		await until('b has the live ones', () => b.got.length >= 5 + missed);
		await sleep(100);
		expect(ns(b)).toEqual(range(0, 5 + missed));
		expect(b.got).toEqual(a.got);
		expect(b.recovered).toEqual([{ room, recovered: true, position: expect.objectContaining({ epoch: a.got[0]![2] }) }]);
		// Two pages: [since, +999], then on from the last event read (the node's page is at most 1000).
		const pages = historyRequests();
		expect(pages).toHaveLength(2);
		expect(pages[0]).toMatchObject({ after: b.got[2]![1] - 1, limit: 1000 });
		expect(pages[1]).toMatchObject({ after: b.got[1001]![1] - 1 });
	});

	it('gets recovered:false, then live events, when its position is from an earlier epoch of the history', async () => {
		const room = 'chat.epoch';
		const { a, b } = await twoTabs(room);
		const old = b.rc.position(room)!;
		// An operator deletes the stream; the node recreates it (a new epoch) within its 5 s check.
		const jsm = await nc.jetstreamManager();
		await jsm.streams.delete(await jsm.streams.find(`rc.room.${room}`));
		const end = Date.now() + 15_000;
		for (let n = 3; !a.got.some(([, , epoch]) => epoch !== old.epoch); n++) {
			if (Date.now() > end) throw new Error(`no event of a new epoch after 15 s\n${node.logs().slice(-3000)}`);
			await publish(room, n, n + 1);
			await sleep(100);
		}
		const worker = a.rc.position(room)!;
		expect(worker.epoch).not.toBe(old.epoch);

		b.page.fire('pageshow');
		await until('b re-joined', () => b.recovered.length === 1);
		expect(b.recovered).toEqual([{ room, recovered: false, position: a.rc.position(room) }]);
		expect(historyRequests()).toHaveLength(0); // nothing to read: another epoch
		const before = b.got.length;
		expect(before).toBe(3);
		const last = ns(a).at(-1)!;
		await publish(room, 1000, 1003);
		await until('live events in b', () => b.got.length === before + 3);
		expect(ns(b).slice(before)).toEqual([1000, 1001, 1002]);
		expect(ns(a).slice(-3)).toEqual([1000, 1001, 1002]);
		expect(ns(a).at(-4)).toBe(last);
	}, 30_000);

	it('gets recovered:false, then live events, when the history no longer reaches back to its position', async () => {
		const room = 'tiny.gone'; // keeps 5 events
		const { a, b } = await twoTabs(room);
		await publish(room, 3, 13);
		await until('a has the events b missed', () => a.got.length === 13);
		b.page.fire('pageshow');
		await until('b re-joined', () => b.recovered.length === 1);
		expect(b.recovered).toEqual([{ room, recovered: false, position: a.rc.position(room) }]);
		expect(historyRequests()).toHaveLength(1);
		await publish(room, 13, 15);
		await until('live events in b', () => b.got.length === 5);
		expect(ns(b)).toEqual([0, 1, 2, 13, 14]);
		expect(ns(a)).toEqual(range(0, 15));
	});
});
