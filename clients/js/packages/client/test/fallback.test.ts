import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { RoomcastClient } from '../src/client.js';
import type { HubMessage, TabMessage } from '../src/shared/messages.js';
import type { PortLike, SharedWorkerLike } from '../src/shared/port-link.js';
import { FakeWebSocket, ManualClock, flush } from './helpers.js';

/** A SharedWorker whose script may never run: the test fires `error` or answers as the hub. */
class FakeWorker implements SharedWorkerLike {
	posted: TabMessage[] = [];
	#portFns: Array<(ev: { data: unknown }) => void> = [];
	#errorFns: Array<(ev: unknown) => void> = [];
	port: PortLike = {
		postMessage: (m) => this.posted.push(m as TabMessage),
		addEventListener: (_t, fn) => this.#portFns.push(fn)
	};
	addEventListener(_t: 'error', fn: (ev: unknown) => void) {
		this.#errorFns.push(fn);
	}
	fail() {
		this.#errorFns.forEach((f) => f({ type: 'error' }));
	}
	hub(m: HubMessage) {
		this.#portFns.forEach((f) => f({ data: m }));
	}
}

describe('SharedWorker fallback', () => {
	let clock: ManualClock;
	let worker: FakeWorker;
	const g = globalThis as { SharedWorker?: unknown };
	const had = 'SharedWorker' in g;
	const prev = g.SharedWorker;

	beforeEach(() => {
		FakeWebSocket.reset();
		clock = new ManualClock();
		worker = new FakeWorker();
		g.SharedWorker = function SharedWorker() {};
		vi.spyOn(console, 'warn').mockImplementation(() => {});
	});
	afterEach(() => {
		if (had) g.SharedWorker = prev;
		else delete g.SharedWorker;
		vi.restoreAllMocks();
	});

	const client = (extra: Record<string, unknown> = {}) =>
		new RoomcastClient({
			url: 'ws://node.test/chat',
			clock,
			WebSocket: FakeWebSocket,
			sharedWorker: () => worker,
			wake: () => () => {},
			...extra
		});

	it('opens a direct socket when the worker script fails to load', async () => {
		const rc = client();
		await flush();
		expect(rc.shared).toBe(true);
		expect(FakeWebSocket.instances).toHaveLength(0);
		worker.fail();
		await flush();
		expect(rc.shared).toBe(false);
		expect(FakeWebSocket.instances).toHaveLength(1);
		expect(FakeWebSocket.last.url).toBe('ws://node.test/chat');
		FakeWebSocket.last.welcome();
		expect(rc.state).toBe('open');
		expect(console.warn).toHaveBeenCalledOnce();
	});

	it('opens a direct socket when the worker never answers', async () => {
		const rc = client({ sharedWorkerTimeout: 3000 });
		await flush();
		clock.advance(2999);
		expect(FakeWebSocket.instances).toHaveLength(0);
		expect(rc.state).toBe('connecting');
		clock.advance(1);
		await flush();
		expect(rc.shared).toBe(false);
		expect(FakeWebSocket.instances).toHaveLength(1);
		// The worker detaches: it said hello, then bye.
		expect(worker.posted.map((m) => m.t)).toEqual(['hello', 'bye']);
	});

	it('stays shared once the hub has answered, even if the worker errors later', async () => {
		const rc = client();
		await flush();
		worker.hub({ t: 'state', info: { state: 'connecting' } });
		clock.advance(60_000);
		worker.fail();
		expect(rc.shared).toBe(true);
		expect(FakeWebSocket.instances).toHaveLength(0);
		worker.hub({ t: 'state', info: { state: 'open' } });
		worker.hub({ t: 'msg', msg: { type: 'welcome', session: 'S', node: 'n', user: '', meta: {}, rooms: [], ping_interval: 25 } });
		expect(rc.state).toBe('open');
		expect(rc.session).toBe('S');
	});

	it('keeps requests made while waiting and sends them on the direct socket', async () => {
		const rc = client();
		const joined = rc.join('lobby', { name: 'ada' } as never);
		await flush();
		worker.fail();
		await flush();
		FakeWebSocket.last.welcome();
		expect(FakeWebSocket.last.ofType('join')).toMatchObject([{ room: 'lobby', meta: { name: 'ada' } }]);
		const id = FakeWebSocket.last.ofType('join')[0]!.id;
		FakeWebSocket.last.serverSend({ type: 'ack', id });
		await expect(joined).resolves.toBeUndefined();
	});

	it('does not fall back after close()', async () => {
		const rc = client();
		await flush();
		rc.close();
		worker.fail();
		clock.advance(10_000);
		expect(FakeWebSocket.instances).toHaveLength(0);
		expect(rc.state).toBe('closed');
	});
});
