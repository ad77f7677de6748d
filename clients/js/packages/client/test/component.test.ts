// @vitest-environment happy-dom
import { flushSync, mount, unmount } from 'svelte';
import { beforeEach, describe, expect, it } from 'vitest';
import Harness from './Harness.svelte';
import { FakeWebSocket, flush } from './helpers.js';

beforeEach(() => FakeWebSocket.reset());

describe('<WebSocket>', () => {
	it('connects through the form action, joins the room and renders messages', async () => {
		const g = globalThis as { fetch: typeof fetch };
		const saved = g.fetch;
		const posted: string[] = [];
		g.fetch = (async (url: string, init: RequestInit) => {
			posted.push(`${init.method} ${url}`);
			return new Response(JSON.stringify({ type: 'success', status: 200, data: '[{"url":1},"ws://node.test/_/connect/k1"]' }));
		}) as unknown as typeof fetch;
		const target = document.createElement('div');
		const app = mount(Harness, { target, props: { WebSocketImpl: FakeWebSocket } });
		try {
			for (let i = 0; i < 50 && FakeWebSocket.instances.length === 0; i++) await new Promise((r) => setTimeout(r, 1));
			expect(posted).toEqual(['POST ?/ws']);
			const ws = FakeWebSocket.last;
			expect(ws.url).toBe('ws://node.test/_/connect/k1');
			ws.welcome();
			flushSync();
			expect(ws.ofType('join')[0]).toMatchObject({ room: 'lobby' });
			ws.serverSend({ type: 'event', room: 'lobby', event: 'chat', data: 'Connected!' }, { type: 'event', room: 'lobby', event: 'chat', data: 'second' });
			flushSync();
			expect([...target.querySelectorAll('p.msg')].map((p) => p.textContent)).toEqual(['0 chat: Connected!', '1 chat: second']);
			expect(target.querySelector('.state')?.textContent).toBe('open');
			(target.querySelector('button.close') as HTMLButtonElement).click();
			flushSync();
			await flush();
			expect(ws.closedWith?.code).toBe(1000);
			expect(target.querySelector('.state')?.textContent).toBe('closed');
		} finally {
			unmount(app);
			g.fetch = saved;
		}
	});
});
