import { beforeEach, describe, expect, it } from 'vitest';
import { Connection, isOneTimeUrl, toWebSocketUrl, type ConnectionOptions } from '../src/connection.js';
import type { RoomcastError } from '../src/errors.js';
import type { StateInfo } from '../src/link.js';
import type { ServerMessage } from '../src/protocol.js';
import { FakeWebSocket, ManualClock, flush, sequence } from './helpers.js';

let clock: ManualClock;
let wakeFn: (() => void) | undefined;

function make(opts: ConnectionOptions = {}) {
	const conn = new Connection({
		url: 'ws://node.test/chat',
		WebSocket: FakeWebSocket,
		clock,
		random: () => 0.5,
		wake: (w) => {
			wakeFn = w;
			return () => {
				wakeFn = undefined;
			};
		},
		...opts
	});
	const states: StateInfo[] = [];
	const msgs: ServerMessage[] = [];
	const errors: RoomcastError[] = [];
	conn.on('state', (s) => states.push(s));
	conn.on('message', (m) => msgs.push(m));
	conn.on('error', (e) => errors.push(e));
	return { conn, states, msgs, errors };
}

beforeEach(() => {
	FakeWebSocket.reset();
	clock = new ManualClock();
	wakeFn = undefined;
});

describe('Connection', () => {
	it('is open only after welcome, and emits it', async () => {
		const { conn, states, msgs } = make();
		conn.open();
		await flush();
		expect(conn.state).toBe('connecting');
		expect(FakeWebSocket.last.url).toBe('ws://node.test/chat');
		FakeWebSocket.last.serverOpen();
		expect(conn.state).toBe('connecting');
		FakeWebSocket.last.welcome();
		expect(conn.state).toBe('open');
		expect(states.map((s) => s.state)).toEqual(['connecting', 'open']);
		expect(msgs[0]?.type).toBe('welcome');
	});

	it('splits batched frames into messages', async () => {
		const { conn, msgs } = make();
		conn.open();
		await flush();
		const ws = FakeWebSocket.last;
		ws.serverOpen();
		ws.serverSend(
			{ type: 'welcome', session: 's', node: 'n', user: 'u', meta: {}, rooms: [], ping_interval: 25 },
			{ type: 'event', room: 'r', event: 'a', data: 1 },
			{ type: 'event', room: 'r', event: 'b', data: 2 }
		);
		expect(msgs.map((m) => m.type)).toEqual(['welcome', 'event', 'event']);
	});

	it('reconnects with full-jitter backoff after an abnormal close, and never gives up', async () => {
		const { conn, states } = make({ random: () => 0.999999 });
		conn.open();
		await flush();
		FakeWebSocket.last.welcome();
		const windows: number[] = [];
		for (let i = 0; i < 30; i++) {
			FakeWebSocket.last.serverClose(1006);
			const s = states.at(-1)!;
			expect(s.state).toBe('reconnecting');
			expect(s.attempt).toBe(i);
			windows.push(s.delay!);
			const before = FakeWebSocket.instances.length;
			clock.advance(s.delay! - 1);
			await flush();
			expect(FakeWebSocket.instances.length).toBe(before);
			clock.advance(1);
			await flush();
			expect(FakeWebSocket.instances.length).toBe(before + 1);
		}
		expect(windows.slice(0, 7)).toEqual([499, 999, 1999, 3999, 7999, 15999, 19999]);
		expect(Math.max(...windows)).toBe(19999);
		expect(conn.state).toBe('connecting');
	});

	it('resets the attempt counter after a welcome', async () => {
		const { conn, states } = make();
		conn.open();
		await flush();
		FakeWebSocket.last.serverClose(1006);
		clock.advance(states.at(-1)!.delay!);
		await flush();
		FakeWebSocket.last.serverClose(1006);
		expect(states.at(-1)!.attempt).toBe(1);
		clock.advance(states.at(-1)!.delay!);
		await flush();
		FakeWebSocket.last.welcome();
		FakeWebSocket.last.serverClose(1006);
		expect(states.at(-1)!.attempt).toBe(0);
	});

	it('calls mint() for a fresh URL on every attempt', async () => {
		let n = 0;
		const { conn, states } = make({ url: undefined, mint: async () => `/_/connect/key${++n}`, baseUrl: 'https://app.test/page' });
		conn.open();
		await flush();
		expect(FakeWebSocket.last.url).toBe('wss://app.test/_/connect/key1');
		FakeWebSocket.last.welcome();
		FakeWebSocket.last.serverClose(1006);
		clock.advance(states.at(-1)!.delay!);
		await flush();
		expect(FakeWebSocket.last.url).toBe('wss://app.test/_/connect/key2');
		expect(n).toBe(2);
	});

	it('retries with backoff when mint() fails, reporting the error', async () => {
		let fail = true;
		const { conn, states, errors } = make({
			url: undefined,
			mint: async () => {
				if (fail) throw new Error('503');
				return 'ws://node.test/_/connect/ok';
			}
		});
		conn.open();
		await flush();
		expect(conn.state).toBe('reconnecting');
		expect(errors[0]?.code).toBe('mint_failed');
		expect(FakeWebSocket.instances).toHaveLength(0);
		fail = false;
		clock.advance(states.at(-1)!.delay!);
		await flush();
		expect(FakeWebSocket.last.url).toBe('ws://node.test/_/connect/ok');
	});

	it('reconnects at once on 1001 (draining) and 1012, with backoff for a second drain in a row', async () => {
		const { conn, states } = make();
		conn.open();
		await flush();
		FakeWebSocket.last.welcome();
		FakeWebSocket.last.serverClose(1001, 'draining');
		await flush();
		expect(FakeWebSocket.instances).toHaveLength(2);
		expect(conn.state).toBe('connecting');
		expect(states.at(-1)).toMatchObject({ state: 'connecting', code: 1001, reason: 'draining' });
		FakeWebSocket.last.serverClose(1001);
		expect(conn.state).toBe('reconnecting');
		clock.advance(states.at(-1)!.delay!);
		await flush();
		FakeWebSocket.last.welcome();
		FakeWebSocket.last.serverClose(1012);
		await flush();
		expect(FakeWebSocket.instances).toHaveLength(4);
	});

	it.each([
		[4001, 'key_invalid'],
		[4003, 'forbidden']
	])('surfaces close %i as a %s error and does not reconnect', async (code, name) => {
		const { conn, states, errors } = make();
		conn.open();
		await flush();
		FakeWebSocket.last.welcome();
		FakeWebSocket.last.serverClose(code, 'nope');
		expect(conn.state).toBe('closed');
		expect(states.at(-1)!.error?.code).toBe(name);
		expect(errors.at(-1)?.closeCode).toBe(code);
		clock.advance(120_000);
		await flush();
		expect(FakeWebSocket.instances).toHaveLength(1);
	});

	it('stops on a normal close (1000) from the node', async () => {
		const { conn } = make();
		conn.open();
		await flush();
		FakeWebSocket.last.welcome();
		FakeWebSocket.last.serverClose(1000, 'kicked');
		expect(conn.state).toBe('closed');
		clock.advance(60_000);
		await flush();
		expect(FakeWebSocket.instances).toHaveLength(1);
	});

	it.each([1006, 1011, 4008, 4009, 1009])('retries after close %i', async (code) => {
		const { conn } = make();
		conn.open();
		await flush();
		FakeWebSocket.last.welcome();
		FakeWebSocket.last.serverClose(code);
		expect(conn.state).toBe('reconnecting');
	});

	it('pings every ping_interval and drops a socket that misses the pong deadline', async () => {
		const { conn, states } = make({ pongTimeout: 3000 });
		conn.open();
		await flush();
		const ws = FakeWebSocket.last;
		ws.welcome({ ping_interval: 10 });
		clock.advance(10_000);
		expect(ws.ofType('ping')).toHaveLength(1);
		ws.serverSend({ type: 'pong' });
		clock.advance(10_000);
		expect(ws.ofType('ping')).toHaveLength(2);
		expect(conn.state).toBe('open');
		clock.advance(2999);
		expect(conn.state).toBe('open');
		clock.advance(1);
		expect(conn.state).toBe('reconnecting');
		expect(states.at(-1)!.reason).toBe('no pong in time');
		expect(ws.closedWith?.code).toBe(4000);
	});

	it('counts any message as a pong', async () => {
		const { conn } = make({ pongTimeout: 3000 });
		conn.open();
		await flush();
		const ws = FakeWebSocket.last;
		ws.welcome({ ping_interval: 10 });
		clock.advance(10_000);
		ws.serverSend({ type: 'event', room: 'r', event: 'x', data: 1 });
		clock.advance(5000);
		expect(conn.state).toBe('open');
	});

	it('gives up an attempt that gets no welcome in time', async () => {
		const { conn } = make({ connectTimeout: 5000 });
		conn.open();
		await flush();
		FakeWebSocket.last.serverOpen();
		clock.advance(5000);
		expect(conn.state).toBe('reconnecting');
	});

	it('resumes at once on wake while waiting out a backoff, and probes an open socket', async () => {
		const { conn, states } = make({ random: () => 0.99 });
		conn.open();
		await flush();
		FakeWebSocket.last.welcome();
		wakeFn!();
		expect(FakeWebSocket.last.ofType('ping')).toHaveLength(1);
		FakeWebSocket.last.serverSend({ type: 'pong' });
		for (let i = 0; i < 5; i++) {
			FakeWebSocket.last.serverClose(1006);
			clock.advance(states.at(-1)!.delay!);
			await flush();
		}
		FakeWebSocket.last.serverClose(1006);
		expect(states.at(-1)!.delay).toBeGreaterThan(10_000);
		const before = FakeWebSocket.instances.length;
		wakeFn!(); // `online` or visibilitychange → visible
		await flush();
		expect(FakeWebSocket.instances.length).toBe(before + 1);
	});

	it('refuses to reuse a one-time key after it was redeemed', async () => {
		const { conn, errors } = make({ url: undefined, key: 'k1', baseUrl: 'http://node.test' });
		conn.open();
		await flush();
		expect(FakeWebSocket.last.url).toBe('ws://node.test/_/connect/k1');
		FakeWebSocket.last.welcome();
		FakeWebSocket.last.serverClose(1006);
		expect(conn.state).toBe('closed');
		expect(errors.at(-1)?.code).toBe('key_used');
	});

	it('reuses a continuous route URL across reconnects', async () => {
		const { conn, states } = make({ url: 'http://node.test/_/demo/ws' });
		conn.open();
		await flush();
		FakeWebSocket.last.welcome();
		FakeWebSocket.last.serverClose(1006);
		clock.advance(states.at(-1)!.delay!);
		await flush();
		expect(FakeWebSocket.instances.map((w) => w.url)).toEqual(['ws://node.test/_/demo/ws', 'ws://node.test/_/demo/ws']);
		expect(conn.state).toBe('connecting');
	});

	it('close() stops everything, ignores late events, and open() starts again', async () => {
		const { conn, states } = make();
		conn.open();
		await flush();
		const ws = FakeWebSocket.last;
		ws.welcome();
		conn.close();
		expect(conn.state).toBe('closed');
		expect(ws.closedWith?.code).toBe(1000);
		ws.onclose?.({ code: 1006, reason: '' });
		clock.advance(100_000);
		await flush();
		expect(FakeWebSocket.instances).toHaveLength(1);
		expect(wakeFn).toBeUndefined();
		conn.open();
		await flush();
		expect(FakeWebSocket.instances).toHaveLength(2);
		expect(states.at(-1)!.state).toBe('connecting');
	});

	it('send() refuses while not open', async () => {
		const { conn } = make();
		expect(conn.send({ type: 'ping' })).toBe(false);
		conn.open();
		await flush();
		expect(conn.send({ type: 'ping' })).toBe(false);
		FakeWebSocket.last.welcome();
		expect(conn.send({ type: 'ping' })).toBe(true);
	});

	it('closes for good without a WebSocket implementation (SSR)', async () => {
		const g = globalThis as { WebSocket?: unknown };
		const saved = g.WebSocket;
		delete g.WebSocket;
		try {
			const { conn, errors } = make({ WebSocket: undefined });
			conn.open();
			await flush();
			expect(conn.state).toBe('closed');
			expect(errors[0]?.message).toMatch(/WebSocket/);
		} finally {
			if (saved) g.WebSocket = saved;
		}
	});
});

describe('URL helpers', () => {
	it('maps http(s) to ws(s) and resolves relative URLs', () => {
		expect(toWebSocketUrl('/_/connect/k', 'https://a.test/x/y')).toBe('wss://a.test/_/connect/k');
		expect(toWebSocketUrl('http://b.test:8080/chat')).toBe('ws://b.test:8080/chat');
		expect(toWebSocketUrl('wss://c.test/z')).toBe('wss://c.test/z');
	});
	it('recognises one-time URLs', () => {
		expect(isOneTimeUrl('/_/connect/abc')).toBe(true);
		expect(isOneTimeUrl('wss://x/_/connect?key=abc')).toBe(true);
		expect(isOneTimeUrl('/chat')).toBe(false);
		expect(isOneTimeUrl('/_/connectx')).toBe(false);
	});
	it('sequence helper replays values', () => {
		const r = sequence(0.1, 0.2);
		expect([r(), r(), r()]).toEqual([0.1, 0.2, 0.5]);
	});
});
