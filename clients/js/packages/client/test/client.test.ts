import { beforeEach, describe, expect, it } from 'vitest';
import { RoomcastClient, type ClientOptions } from '../src/client.js';
import { RoomcastError } from '../src/errors.js';
import { FakeWebSocket, ManualClock, flush } from './helpers.js';

type Events = { chat: { text: string }; typing: boolean; 'entity:created': unknown };
type Meta = { name: string };

let clock: ManualClock;

function make(opts: ClientOptions = {}) {
	return new RoomcastClient<Events, Meta>({
		url: 'ws://node.test/chat',
		WebSocket: FakeWebSocket,
		clock,
		random: () => 0.5,
		wake: null,
		...opts
	});
}

/** Opens a client and returns it with its socket, welcomed. */
async function connected(opts: ClientOptions = {}, welcome: Record<string, unknown> = {}) {
	const rc = make(opts);
	await flush();
	const ws = FakeWebSocket.last;
	ws.welcome(welcome);
	return { rc, ws };
}

/** Drops the socket and lets the client reconnect; returns the new socket, welcomed. */
async function reconnect(rc: RoomcastClient<Events, Meta>, code = 1006, welcome: Record<string, unknown> = {}) {
	FakeWebSocket.last.serverClose(code);
	clock.advance(20_000);
	await flush();
	const ws = FakeWebSocket.last;
	ws.welcome({ session: 's2', ...welcome });
	expect(rc.state).toBe('open');
	return ws;
}

beforeEach(() => {
	FakeWebSocket.reset();
	clock = new ManualClock();
});

describe('RoomcastClient: request correlation', () => {
	it('gives each request its own id and resolves on the matching ack', async () => {
		const { rc, ws } = await connected();
		const a = rc.join('a');
		const b = rc.join('b');
		const [ja, jb] = ws.ofType('join');
		expect(ja!.id).not.toBe(jb!.id);
		let aDone = false;
		void a.then(() => (aDone = true));
		ws.serverSend({ type: 'ack', id: jb!.id });
		await expect(b).resolves.toBeUndefined();
		await flush();
		expect(aDone).toBe(false);
		ws.serverSend({ type: 'ack', id: ja!.id });
		await expect(a).resolves.toBeUndefined();
	});

	it('resolves rpc with the reply data, matched by id within a batch', async () => {
		const { rc, ws } = await connected();
		const p1 = rc.rpc<number>('sum', [1, 2]);
		const p2 = rc.rpc<string>('echo', 'x');
		const [r1, r2] = ws.ofType('rpc');
		expect(r1).toMatchObject({ method: 'sum', data: [1, 2] });
		ws.serverSend({ type: 'reply', id: r2!.id, data: 'x' }, { type: 'reply', id: r1!.id, data: 3 });
		await expect(p1).resolves.toBe(3);
		await expect(p2).resolves.toBe('x');
	});

	it('rejects with a typed RoomcastError carrying the node code', async () => {
		const { rc, ws } = await connected();
		const p = rc.rpc('nope');
		ws.serverSend({ type: 'error', id: ws.ofType('rpc')[0]!.id, code: 'not_found', message: 'no responder for nope' });
		const err = await p.catch((e: unknown) => e);
		expect(err).toBeInstanceOf(RoomcastError);
		expect(err).toMatchObject({ code: 'not_found', message: 'no responder for nope' });
	});

	it('rejects an rpc with timeout when no reply comes', async () => {
		const { rc } = await connected();
		const p = rc.rpc('slow', null, { timeout: 500 });
		clock.advance(499);
		await flush();
		clock.advance(1);
		await expect(p).rejects.toMatchObject({ code: 'timeout' });
	});

	it('reports errors without a matching request', async () => {
		const { rc, ws } = await connected();
		const errors: RoomcastError[] = [];
		rc.listen('error', (e) => errors.push(e));
		ws.serverSend({ type: 'error', code: 'bad_request', message: 'unknown type "x"' }, { type: 'error', id: 999, code: 'forbidden', message: 'x' });
		expect(errors.map((e) => e.code)).toEqual(['bad_request', 'forbidden']);
	});

	it('publishes with echo and ack', async () => {
		const { rc, ws } = await connected();
		const p = rc.publish('lobby', 'chat', { text: 'hi' }, { echo: false });
		const [m] = ws.ofType('publish');
		expect(m).toMatchObject({ room: 'lobby', event: 'chat', data: { text: 'hi' }, echo: false });
		ws.serverSend({ type: 'ack', id: m!.id });
		await expect(p).resolves.toBeUndefined();
		void rc.publish('lobby', 'chat', { text: 'again' });
		expect(ws.ofType('publish')[1]).not.toHaveProperty('echo');
	});

	it('sends direct messages to the back-end', async () => {
		const { rc, ws } = await connected();
		void rc.send('typing', true);
		expect(ws.ofType('send')[0]).toMatchObject({ event: 'typing', data: true });
	});

	it('refuses invalid room names locally', async () => {
		const { rc, ws } = await connected();
		await expect(rc.join('a..b')).rejects.toMatchObject({ code: 'bad_request' });
		expect(ws.ofType('join')).toHaveLength(0);
	});
});

describe('RoomcastClient: events', () => {
	it('dispatches typed events to on() listeners with their context, and to *', async () => {
		const { rc, ws } = await connected();
		const got: string[] = [];
		const all: string[] = [];
		const off = rc.on('chat', (data, ctx) => got.push(`${ctx.room}/${ctx.from}:${data.text}`));
		rc.on('*', (_data, ctx) => all.push(ctx.event));
		ws.serverSend(
			{ type: 'event', room: 'lobby', event: 'chat', data: { text: 'a' }, from: 's9' },
			{ type: 'event', event: 'typing', data: true },
			{ type: 'event', room: 'lobby', event: 'chat', data: { text: 'b' }, from: 's9' }
		);
		expect(got).toEqual(['lobby/s9:a', 'lobby/s9:b']);
		expect(all).toEqual(['chat', 'typing', 'chat']);
		off();
		ws.serverSend({ type: 'event', room: 'lobby', event: 'chat', data: { text: 'c' } });
		expect(got).toHaveLength(2);
	});

	it('keeps delivering when a listener throws', async () => {
		const { rc, ws } = await connected();
		const got: number[] = [];
		const errs: unknown[] = [];
		const onErr = (e: unknown) => errs.push(e);
		const proc = (globalThis as unknown as { process: { on(e: string, f: (e: unknown) => void): void; off(e: string, f: (e: unknown) => void): void } }).process;
		proc.on('uncaughtException', onErr);
		rc.on('typing', () => {
			throw new Error('boom');
		});
		rc.on('typing', () => got.push(1));
		ws.serverSend({ type: 'event', event: 'typing', data: true });
		await flush();
		proc.off('uncaughtException', onErr);
		expect(got).toEqual([1]);
		expect(errs).toHaveLength(1);
	});

	it('tracks the history position per room', async () => {
		const { rc, ws } = await connected();
		await joined(rc, ws, 'h');
		ws.serverSend({ type: 'event', room: 'h', event: 'chat', data: { text: 'x' }, seq: 41, epoch: 'e1' });
		expect(rc.position('h')).toEqual({ seq: 41, epoch: 'e1' });
	});
});

async function joined(rc: RoomcastClient<Events, Meta>, ws: FakeWebSocket, room: string, meta?: Meta) {
	const p = rc.join(room, meta);
	const j = ws.ofType('join').filter((m) => m.room === room).at(-1)!;
	ws.serverSend({ type: 'ack', id: j.id });
	await p;
}

describe('RoomcastClient: presence', () => {
	it('keeps sessions from session:list and connected/disconnected/updated', async () => {
		const { rc, ws } = await connected();
		const seen: number[] = [];
		rc.listen('presence', (p) => seen.push(p.count));
		await joined(rc, ws, 'lobby', { name: 'me' });
		ws.serverSend({
			type: 'session:list',
			room: 'lobby',
			sessions: [
				{ session: 's1', user: 'u', meta: { name: 'me' }, connected_at: 2 },
				{ session: 's0', user: 'v', meta: { name: 'old' }, connected_at: 1 }
			]
		});
		expect(rc.sessions('lobby').map((s) => s.meta.name)).toEqual(['old', 'me']);
		ws.serverSend(
			{ type: 'session:connected', room: 'lobby', session: 's3', user: 'w', meta: { name: 'new' }, count: 3 },
			{ type: 'session:updated', room: 'lobby', session: 's0', user: 'v', meta: { name: 'renamed' }, count: 3 },
			{ type: 'session:disconnected', room: 'lobby', session: 's1', user: 'u', meta: { name: 'me' }, count: 2 }
		);
		expect(rc.sessions('lobby').map((s) => s.meta.name)).toEqual(['renamed', 'new']);
		expect(rc.count('lobby')).toBe(2);
		expect(seen).toEqual([2, 3, 3, 2]);
	});

	it('drops presence of a room it left and ignores late deltas for it', async () => {
		const { rc, ws } = await connected();
		await joined(rc, ws, 'r');
		ws.serverSend({ type: 'session:list', room: 'r', sessions: [{ session: 's1', user: 'u', meta: { name: 'a' }, connected_at: 1 }] });
		const p = rc.leave('r');
		ws.serverSend({ type: 'ack', id: ws.ofType('leave')[0]!.id });
		await p;
		ws.serverSend({ type: 'session:connected', room: 'r', session: 's5', user: 'x', meta: { name: 'x' }, count: 1 });
		expect(rc.sessions('r')).toEqual([]);
		expect(rc.rooms).toEqual([]);
	});

	it('presence() asks for a fresh list and resolves with it', async () => {
		const { rc, ws } = await connected();
		await joined(rc, ws, 'r');
		const p = rc.presence('r');
		const req = ws.ofType('presence')[0]!;
		expect(req.room).toBe('r');
		ws.serverSend({ type: 'ack', id: req.id }, { type: 'session:list', room: 'r', sessions: [] });
		await expect(p).resolves.toEqual({ room: 'r', sessions: [], count: 0 });
	});
});

describe('RoomcastClient: reconnect', () => {
	it('re-joins its rooms with their meta after a reconnect and re-lists presence', async () => {
		const { rc, ws } = await connected();
		await joined(rc, ws, 'a', { name: 'ann' });
		await joined(rc, ws, 'b');
		const ws2 = await reconnect(rc);
		expect(ws2.ofType('join').map((j) => [j.room, j.meta])).toEqual([
			['a', { name: 'ann' }],
			['b', undefined]
		]);
		ws2.serverSend({ type: 'session:list', room: 'a', sessions: [{ session: 's2', user: 'u', meta: { name: 'ann' }, connected_at: 5 }] });
		expect(rc.sessions('a').map((s) => s.session)).toEqual(['s2']);
		expect(rc.session).toBe('s2');
	});

	it('holds joins made while disconnected and resolves them after the welcome', async () => {
		const rc = make();
		await flush();
		const p = rc.join('later');
		const ws = FakeWebSocket.last;
		expect(ws.sent).toHaveLength(0);
		ws.welcome();
		const j = ws.ofType('join');
		expect(j).toHaveLength(1);
		ws.serverSend({ type: 'ack', id: j[0]!.id });
		await expect(p).resolves.toBeUndefined();
	});

	it('re-sends a join whose ack was lost with the connection', async () => {
		const { rc, ws } = await connected();
		const p = rc.join('r');
		expect(ws.ofType('join')).toHaveLength(1);
		const ws2 = await reconnect(rc);
		const j = ws2.ofType('join');
		expect(j).toHaveLength(1);
		ws2.serverSend({ type: 'ack', id: j[0]!.id });
		await expect(p).resolves.toBeUndefined();
	});

	it('fails in-flight requests with disconnected, and sends queued ones after re-joining', async () => {
		const { rc, ws } = await connected();
		await joined(rc, ws, 'r');
		const inflight = rc.rpc('x');
		ws.serverClose(1006);
		await expect(inflight).rejects.toMatchObject({ code: 'disconnected' });
		const queued = rc.publish('r', 'chat', { text: 'offline' });
		clock.advance(20_000);
		await flush();
		const ws2 = FakeWebSocket.last;
		ws2.welcome();
		expect(ws2.messages.map((m) => m.type)).toEqual(['join', 'publish']);
		ws2.serverSend({ type: 'ack', id: ws2.ofType('publish')[0]!.id });
		await expect(queued).resolves.toBeUndefined();
	});

	it('does not re-join a room the node refused, and reports it', async () => {
		const { rc, ws } = await connected();
		await joined(rc, ws, 'r');
		const errors: RoomcastError[] = [];
		rc.listen('error', (e) => errors.push(e));
		const ws2 = await reconnect(rc);
		ws2.serverSend({ type: 'error', id: ws2.ofType('join')[0]!.id, code: 'forbidden', message: 'not allowed' });
		await flush();
		expect(errors[0]?.code).toBe('forbidden');
		expect(rc.rooms).toEqual([]);
		const ws3 = await reconnect(rc);
		expect(ws3.ofType('join')).toHaveLength(0);
	});

	it('treats rooms from welcome as joined and never re-joins them', async () => {
		const { rc, ws } = await connected({}, { rooms: ['auto'] });
		expect(rc.rooms).toEqual(['auto']);
		await expect(rc.join('auto')).resolves.toBeUndefined();
		expect(ws.ofType('join')).toHaveLength(0);
		ws.serverSend({ type: 'session:list', room: 'auto', sessions: [{ session: 's1', user: 'u', meta: { name: 'x' }, connected_at: 1 }] });
		expect(rc.count('auto')).toBe(1);
		const ws2 = await reconnect(rc, 1006, { rooms: ['auto'] });
		expect(ws2.ofType('join')).toHaveLength(0);
	});

	it('recovers by default: the position of the join ack is the since of the re-join (no event seen)', async () => {
		const { rc, ws } = await connected();
		const p = rc.join('h');
		ws.serverSend({ type: 'ack', id: ws.ofType('join')[0]!.id, seq: 1042, epoch: 'E' });
		await p;
		expect(rc.position('h')).toEqual({ seq: 1042, epoch: 'E' });
		const ws2 = await reconnect(rc);
		expect(ws2.ofType('join')[0]).toMatchObject({ room: 'h', since: { seq: 1042, epoch: 'E' } });
	});

	it('keeps since on recovered:true until the replayed events move it, and notifies', async () => {
		const { rc, ws } = await connected();
		await joined(rc, ws, 'h');
		ws.serverSend({ type: 'event', room: 'h', event: 'chat', data: { text: 'a' }, seq: 7, epoch: 'E' });
		const got: unknown[] = [];
		rc.listen('recovered', (r) => got.push(structuredClone(r)));
		const seqs: number[] = [];
		rc.on('chat', (_d, ctx) => seqs.push(ctx.seq!));
		const ws2 = await reconnect(rc);
		const j = ws2.ofType('join')[0]!;
		ws2.serverSend(
			{ type: 'ack', id: j.id, seq: 9, epoch: 'E', recovered: true },
			{ type: 'session:list', room: 'h', sessions: [] }
		);
		expect(rc.position('h')).toEqual({ seq: 7, epoch: 'E' });
		expect(got).toEqual([{ room: 'h', recovered: true, position: { seq: 7, epoch: 'E' } }]);
		ws2.serverSend(
			{ type: 'event', room: 'h', event: 'chat', data: { text: 'b' }, seq: 8, epoch: 'E' },
			{ type: 'event', room: 'h', event: 'chat', data: { text: 'c' }, seq: 9, epoch: 'E' }
		);
		expect(seqs).toEqual([8, 9]);
		expect(rc.position('h')).toEqual({ seq: 9, epoch: 'E' });
	});

	it('reports recovered:false and carries on from the ack position', async () => {
		const { rc, ws } = await connected();
		await joined(rc, ws, 'h');
		ws.serverSend({ type: 'event', room: 'h', event: 'chat', data: { text: 'a' }, seq: 7, epoch: 'E' });
		const got: unknown[] = [];
		rc.listen('recovered', (r) => got.push(structuredClone(r)));
		const ws2 = await reconnect(rc);
		ws2.serverSend({ type: 'ack', id: ws2.ofType('join')[0]!.id, seq: 500, epoch: 'F', recovered: false });
		expect(got).toEqual([{ room: 'h', recovered: false, position: { seq: 500, epoch: 'F' } }]);
		expect(rc.position('h')).toEqual({ seq: 500, epoch: 'F' });
	});

	it('reports recovered:false and forgets the position when the room keeps no history any more', async () => {
		const { rc, ws } = await connected();
		await joined(rc, ws, 'h');
		ws.serverSend({ type: 'event', room: 'h', event: 'chat', data: { text: 'a' }, seq: 7, epoch: 'E' });
		const got: unknown[] = [];
		rc.listen('recovered', (r) => got.push(structuredClone(r)));
		const ws2 = await reconnect(rc);
		ws2.serverSend({ type: 'ack', id: ws2.ofType('join')[0]!.id, recovered: false });
		expect(got).toEqual([{ room: 'h', recovered: false, position: undefined }]);
		expect(rc.position('h')).toBeUndefined();
		const ws3 = await reconnect(rc);
		expect(ws3.ofType('join')[0]!.since).toBeUndefined();
	});

	it('sends no since with recover: false, and no recovered notification for joins without since', async () => {
		const { rc, ws } = await connected({ recover: false });
		const got: unknown[] = [];
		rc.listen('recovered', (r) => got.push(r));
		const p = rc.join('h');
		ws.serverSend({ type: 'ack', id: ws.ofType('join')[0]!.id, seq: 3, epoch: 'E' });
		await p;
		expect(rc.position('h')).toEqual({ seq: 3, epoch: 'E' });
		const ws2 = await reconnect(rc);
		expect(ws2.ofType('join')[0]!.since).toBeUndefined();
		expect(got).toEqual([]);
	});

	it('drops events at or below the position in the same epoch, not from another epoch', async () => {
		const { rc, ws } = await connected();
		const p = rc.join('h');
		ws.serverSend({ type: 'ack', id: ws.ofType('join')[0]!.id, seq: 10, epoch: 'E' });
		await p;
		const seqs: string[] = [];
		rc.on('chat', (_d, ctx) => seqs.push(`${ctx.epoch}:${ctx.seq}`));
		const ev = (seq: number, epoch: string) => ({ type: 'event', room: 'h', event: 'chat', data: { text: '' }, seq, epoch });
		ws.serverSend(ev(9, 'E'), ev(10, 'E'), ev(11, 'E'), ev(11, 'E'), ev(12, 'E'), ev(2, 'G'), ev(2, 'G'), ev(3, 'G'));
		ws.serverSend({ type: 'event', room: 'other', event: 'chat', data: { text: '' } });
		expect(seqs).toEqual(['E:11', 'E:12', 'G:2', 'G:3', 'undefined:undefined']);
	});

	it('reads history pages', async () => {
		const { rc, ws } = await connected();
		const p = rc.history('h', { limit: 2, before: 50 });
		const req = ws.ofType('history')[0]!;
		expect(req).toEqual({ type: 'history', id: req.id, room: 'h', limit: 2, before: 50 });
		const events = [
			{ seq: 40, event: 'chat', data: { text: 'a' }, from: 's1', time: 1 },
			{ seq: 45, event: 'chat', data: { text: 'b' }, time: 2 }
		];
		ws.serverSend({ type: 'history', id: req.id, room: 'h', seq: 60, epoch: 'E', events });
		await expect(p).resolves.toEqual({ room: 'h', seq: 60, epoch: 'E', events });
		const q = rc.history('none', { after: 3 });
		const r2 = ws.ofType('history')[1]!;
		expect(r2).toEqual({ type: 'history', id: r2.id, room: 'none', after: 3 });
		ws.serverSend({ type: 'error', id: r2.id, code: 'not_found', message: 'no history' });
		await expect(q).rejects.toMatchObject({ code: 'not_found' });
	});

	it('sends since on re-join when recover is on', async () => {
		const { rc, ws } = await connected({ recover: true });
		await joined(rc, ws, 'h');
		ws.serverSend({ type: 'event', room: 'h', event: 'chat', data: { text: 'x' }, seq: 7, epoch: 'E' });
		const ws2 = await reconnect(rc);
		expect(ws2.ofType('join')[0]).toMatchObject({ room: 'h', since: { seq: 7, epoch: 'E' } });
	});

	it('rejects everything with the fatal error on 4001 and stops', async () => {
		const { rc, ws } = await connected();
		const p = rc.rpc('x');
		const states: string[] = [];
		rc.listen('state', (s) => states.push(s.state));
		ws.serverClose(4001, 'key used');
		await expect(p).rejects.toMatchObject({ code: 'key_invalid', closeCode: 4001 });
		expect(states).toEqual(['closed']);
		await expect(rc.publish('r', 'chat', { text: 'x' })).rejects.toMatchObject({ code: 'closed' });
	});

	it('connects through a form action on every attempt', async () => {
		const calls: string[] = [];
		const g = globalThis as { fetch: typeof fetch };
		const saved = g.fetch;
		let n = 0;
		g.fetch = (async (url: string) => {
			calls.push(String(url));
			return new Response(JSON.stringify({ type: 'success', status: 200, data: `[{"url":1},"ws://node.test/_/connect/k${++n}"]` }));
		}) as unknown as typeof fetch;
		try {
			const rc = make({ url: undefined, action: '?/ws' });
			for (let i = 0; i < 50 && FakeWebSocket.instances.length === 0; i++) await new Promise((r) => setTimeout(r, 1));
			expect(FakeWebSocket.last.url).toBe('ws://node.test/_/connect/k1');
			FakeWebSocket.last.welcome();
			FakeWebSocket.last.serverClose(1006);
			clock.advance(1000); // past the backoff delay (250 ms), well before the 15 s mint limit
			for (let i = 0; i < 50 && FakeWebSocket.instances.length === 1; i++) await new Promise((r) => setTimeout(r, 1));
			expect(FakeWebSocket.last.url).toBe('ws://node.test/_/connect/k2');
			expect(calls).toEqual(['?/ws', '?/ws']);
			rc.close();
		} finally {
			g.fetch = saved;
		}
	});
});

describe('RoomcastClient: state order', () => {
	it('announces open after the welcome is handled', async () => {
		FakeWebSocket.reset();
		clock = new ManualClock();
		const rc = make();
		const seen: Array<[string, string | undefined, number]> = [];
		rc.listen('state', (s) => seen.push([s.state, rc.welcome?.node, FakeWebSocket.instances.at(-1)?.ofType('join').length ?? 0]));
		const p = rc.join('r');
		await flush();
		FakeWebSocket.last.welcome({ node: 'n7' });
		// ('connecting' was announced in the constructor, before listen.)
		expect(seen).toEqual([['open', 'n7', 1]]);
		void p.catch(() => {});
	});
});
