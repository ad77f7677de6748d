// @vitest-environment happy-dom
// (a DOM environment makes vitest compile runes for the client, where effects run)
import { flushSync } from 'svelte';
import { beforeEach, describe, expect, it } from 'vitest';
import { Collection } from '../src/svelte/collection.svelte.js';
import { Roomcast } from '../src/svelte/roomcast.svelte.js';
import { FakeWebSocket, ManualClock, flush } from './helpers.js';

type Events = { chat: string; 'entity:created': unknown; 'entity:updated': unknown; 'entity:deleted': unknown };

beforeEach(() => FakeWebSocket.reset());

function setup() {
	const rc = new Roomcast<Events, { name: string }>({
		url: 'ws://node.test/chat',
		WebSocket: FakeWebSocket,
		clock: new ManualClock(),
		wake: null,
		autoOpen: true
	});
	return rc;
}

describe('Roomcast (Svelte runes)', () => {
	it('exposes reactive state, sessions and counts', async () => {
		const rc = setup();
		const seen: string[] = [];
		const counts: number[] = [];
		let lobby!: ReturnType<typeof rc.room>;
		const stop = $effect.root(() => {
			$effect(() => {
				seen.push(rc.state);
			});
			$effect(() => {
				counts.push(lobby?.count ?? -1);
			});
		});
		flushSync();
		await flush();
		const ws = FakeWebSocket.last;
		ws.welcome({ node: 'node-a' });
		flushSync();
		expect(rc.welcome?.node).toBe('node-a');
		lobby = rc.room('lobby', { name: 'ada' });
		ws.serverSend({ type: 'ack', id: ws.ofType('join')[0]!.id });
		await lobby.ready;
		expect(lobby.joined).toBe(true);
		ws.serverSend({ type: 'session:list', room: 'lobby', sessions: [{ session: 's1', user: 'u', meta: { name: 'ada' }, connected_at: 1 }] });
		flushSync();
		ws.serverSend({ type: 'session:connected', room: 'lobby', session: 's2', user: 'v', meta: { name: 'bob' }, count: 2 });
		flushSync();
		expect(lobby.sessions.map((s) => s.meta.name)).toEqual(['ada', 'bob']);
		expect(rc.count('lobby')).toBe(2);
		expect(seen).toEqual(['connecting', 'open']);
		stop();
		rc.destroy();
	});

	it('publishes received events through the events store', async () => {
		const rc = setup();
		await flush();
		FakeWebSocket.last.welcome();
		const got: unknown[] = [];
		const unsub = rc.events.subscribe((e) => e && got.push([e.event, e.data, e.room]));
		FakeWebSocket.last.serverSend({ type: 'event', room: 'r', event: 'chat', data: 'hi' });
		expect(got).toEqual([['chat', 'hi', 'r']]);
		unsub();
		rc.destroy();
	});

	it('keeps a reactive collection from entity events', async () => {
		const rc = setup();
		await flush();
		FakeWebSocket.last.welcome();
		const todos = new Collection<{ id: string; t: string }>(rc, 'todos');
		const lengths: number[] = [];
		const stop = $effect.root(() => {
			$effect(() => {
				lengths.push(todos.items.length);
			});
		});
		flushSync();
		const send = (event: string, data: unknown) => FakeWebSocket.last.serverSend({ type: 'event', room: 'r', event, data });
		send('entity:created', { collection: 'todos', id: 'a', data: { id: 'a', t: '1' }, version: 1 });
		flushSync();
		send('entity:created', { collection: 'todos', id: 'b', data: { id: 'b', t: '2' }, version: 1 });
		flushSync();
		send('entity:updated', { collection: 'todos', id: 'a', data: { id: 'a', t: 'stale' }, version: 1 });
		send('entity:deleted', { collection: 'todos', id: 'b', version: 2 });
		flushSync();
		expect(todos.items).toEqual([{ id: 'a', t: '1' }]);
		expect(lengths).toEqual([0, 1, 2, 1]);
		stop();
		todos.destroy();
		rc.destroy();
	});

	it('wraps an existing client: picks up its presence and leaves it open on destroy', async () => {
		const owner = setup();
		await flush();
		const ws = FakeWebSocket.last;
		ws.welcome();
		const joined = owner.join('lobby', { name: 'ada' });
		ws.serverSend({ type: 'ack', id: ws.ofType('join')[0]!.id });
		await joined;
		ws.serverSend({ type: 'session:list', room: 'lobby', sessions: [{ session: 's1', user: 'u', meta: { name: 'ada' }, connected_at: 1 }] });
		const view = new Roomcast<Events, { name: string }>({ client: owner.client as never });
		expect(view.state).toBe('open');
		expect(view.sessions('lobby').map((s) => s.meta.name)).toEqual(['ada']);
		ws.serverSend({ type: 'session:connected', room: 'lobby', session: 's2', user: 'v', meta: { name: 'bob' }, count: 2 });
		expect(view.count('lobby')).toBe(2);
		view.destroy();
		expect(owner.client.state).toBe('open');
		owner.destroy();
	});
});
