/**
 * createRoomcastHandle() and the Vite plugin against a real node: the minted
 * URL works through the plugin's proxy, refusals keep their status and body.
 */
import http from 'node:http';
import type net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createRoomcast, createRoomcastHandle, durationMs, type HandleEventLike, type Roomcast } from '../src/server/index.js';
import { deny } from '../src/server/guard.js';
import { guardAnswer, guardRequest, hostOf, parseCookies } from '../src/server/guard.js';
import { matcher, roomcast as roomcastPlugin } from '../src/vite/index.js';
import { Browser, baseRoutes, startNode, type TestNode } from './helpers.js';

let node: TestNode;
let rc: Roomcast;

beforeAll(async () => {
	node = await startNode({ routes: baseRoutes });
	rc = createRoomcast({ nats: node.nats, id: 'handle' });
});
afterAll(async () => {
	await rc?.close({ timeout: 200 });
	await node?.stop();
});

const event = (path: string, locals: unknown = {}, method = 'GET'): HandleEventLike => ({
	url: new URL(`http://app.test${path}`),
	request: new Request(`http://app.test${path}`, { method }),
	locals
});
const resolve = () => new Response('page');

/** An HTTP server with the plugin attached the way Vite attaches it (dev or preview). */
async function devServer(target: string, paths: string[] = []): Promise<{ url: string; close(): Promise<void> }> {
	const stack: Array<(req: http.IncomingMessage, res: http.ServerResponse, next: () => void) => void> = [];
	const server = http.createServer((req, res) => {
		let i = 0;
		const next = () => {
			const mw = stack[i++];
			if (mw) mw(req, res, next);
			else res.end('sveltekit page');
		};
		next();
	});
	const sockets = new Set<net.Socket>();
	server.on('connection', (s) => sockets.add(s.on('close', () => sockets.delete(s))));
	roomcastPlugin({ url: target, paths }).configureServer({ httpServer: server, middlewares: { use: (fn) => stack.push(fn) } });
	await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
	const port = (server.address() as net.AddressInfo).port;
	return {
		url: `127.0.0.1:${port}`,
		close: async () => {
			sockets.forEach((s) => s.destroy());
			await new Promise((r) => server.close(r));
		}
	};
}

describe('createRoomcastHandle()', () => {
	it('answers on its path only: 401 without a user, a working URL with one', async () => {
		const handle = createRoomcastHandle({ roomcast: rc });
		expect(await (await handle({ event: event('/other'), resolve })).text()).toBe('page');
		const anon = await handle({ event: event('/api/websocket'), resolve });
		expect(anon.status).toBe(401);
		expect(await anon.json()).toMatchObject({ error: { code: 'unauthorized' } });
		expect((await handle({ event: event('/api/websocket', {}, 'DELETE'), resolve })).status).toBe(405);

		const res = await handle({ event: event('/api/websocket', { user: { id: 'ada' } }), resolve });
		expect(res.status).toBe(200);
		expect(res.headers.get('cache-control')).toBe('no-store');
		const { url } = (await res.json()) as { url: string };
		const b = new Browser(`${node.ws}${url}`);
		expect(await b.welcome()).toMatchObject({ user: 'ada' });
		b.close();
		expect(rc.sockets.size).toBe(0); // no handler: nothing owned here
	});

	it('takes claims from authorize and reports bad ones as 400', async () => {
		const handle = createRoomcastHandle({
			roomcast: rc,
			path: '/ws-url',
			authorize: (ev) => ((ev.locals as { name?: string }).name ? { user: 'bob', meta: { name: 'Bob' }, rooms: ['lobby'] } : null)
		});
		expect((await handle({ event: event('/ws-url', {}, 'POST'), resolve })).status).toBe(401);
		const res = await handle({ event: event('/ws-url', { name: 'Bob' }, 'POST'), resolve });
		const b = new Browser(`${node.ws}${((await res.json()) as { url: string }).url}`);
		expect(await b.welcome()).toMatchObject({ user: 'bob', meta: { name: 'Bob' }, rooms: ['lobby'] });
		b.close();
		const bad = createRoomcastHandle({ roomcast: rc, authorize: () => ({ user: 'has spaces' }) });
		const r = await bad({ event: event('/api/websocket'), resolve });
		expect(r.status).toBe(400);
		expect(((await r.json()) as { error: { message: string } }).error.message).toMatch(/user "has spaces" is invalid/);
	});

	it('runs a handler for each minted session when given one', async () => {
		const ids: string[] = [];
		const handle = createRoomcastHandle({ roomcast: rc, handler: (s) => void ids.push(s.id) });
		const res = await handle({ event: event('/api/websocket', { user: 'carol' }), resolve });
		expect(res.status).toBe(200);
		expect(ids).toHaveLength(1);
		expect(rc.sockets.get(ids[0]!)?.user).toBe('carol');
		rc.sockets.get(ids[0]!)!.close();
	});
});

describe('Vite plugin', () => {
	it('proxies /_/connect/* and route upgrades to the node, keeping the page origin', async () => {
		const dev = await devServer(node.http, ['/chat']);
		try {
			const { url } = await rc.mint({ user: 'dave' });
			// Origin = the dev server's own origin: the node accepts it because Host is kept.
			const b = new Browser(`ws://${dev.url}${url}`, `http://${dev.url}`);
			expect(await b.welcome()).toMatchObject({ user: 'dave' });
			b.close();
			const chat = new Browser(`ws://${dev.url}/chat`, `http://${dev.url}`);
			expect(await chat.welcome()).toMatchObject({ rooms: ['lobby'] });
			chat.close();
			// A used key: the node's 401 and JSON body come through.
			const again = new Browser(`ws://${dev.url}${url}`, `http://${dev.url}`);
			const refused = await again.refused;
			expect(refused.status).toBe(401);
			expect(JSON.parse(refused.body)).toMatchObject({ error: { code: 'unauthorized' } });
			// Other paths stay SvelteKit's.
			expect(await (await fetch(`http://${dev.url}/chatroom`)).text()).toBe('sveltekit page');
			// Plain HTTP on a node path is the node's answer (it wants an upgrade), not SvelteKit's page.
			const plain = await fetch(`http://${dev.url}/_/connect/nope`);
			expect(plain.status).toBe(400);
			expect(await plain.text()).not.toBe('sveltekit page');
		} finally {
			await dev.close();
		}
	});

	it('answers 502 with a hint when no node is running', async () => {
		const dev = await devServer('http://127.0.0.1:1');
		try {
			const b = new Browser(`ws://${dev.url}/_/connect/abc`);
			const refused = await b.refused;
			expect(refused.status).toBe(502);
			expect(refused.body).toMatch(/go run \.\/cmd\/node/);
		} finally {
			await dev.close();
		}
	});

	it('matches exactly the configured paths', () => {
		const m = matcher({ paths: ['/chat'], prefixes: ['/_/demo/'] });
		expect(['/_/connect', '/_/connect/k', '/chat', '/_/demo/ws'].map(m)).toEqual([true, true, true, true]);
		expect(['/chat/x', '/chatroom', '/', '/_/connectx'].map(m)).toEqual([false, false, false, false]);
	});
});

describe('helpers', () => {
	it('parses key lifetimes the way the node does', () => {
		expect(durationMs('2m')).toBe(120_000);
		expect(durationMs('1h30m')).toBe(5_400_000);
		expect(durationMs('1.5s')).toBe(1_500);
		expect(durationMs(90)).toBe(90_000);
		for (const bad of ['', '2', 'm', '2 m', '-1s', 0, -5]) expect(() => durationMs(bad)).toThrow(/invalid/);
	});

	it('builds guard requests and answers', () => {
		const req = guardRequest({
			path: '/chat',
			query: 'room=a&token=t',
			origin: 'https://app.example',
			cookies: 'session=abc%20d; theme="dark"; broken',
			headers: { Authorization: 'Bearer x', 'User-Agent': 'ua' },
			remote: '[::1]:4567',
			node: 'n1'
		});
		expect(req.url.href).toBe('https://app.example/chat?room=a&token=t');
		expect(req.cookies).toEqual({ session: 'abc d', theme: 'dark' });
		expect(req.headers.get('authorization')).toBe('Bearer x');
		expect(req.ip).toBe('::1');
		expect(hostOf('10.0.0.1:80')).toBe('10.0.0.1');
		expect(parseCookies(undefined)).toEqual({});
		expect(guardAnswer(undefined)).toEqual({ allow: true });
		expect(guardAnswer(false)).toEqual({ deny: true, code: 403, reason: 'forbidden' });
		expect(guardAnswer(deny(401))).toEqual({ deny: true, code: 401, reason: 'unauthorized' });
		expect(guardAnswer({ user: 'u', meta: { a: 1 }, rooms: ['r'], allow: ['x.*'], session: 's' })).toEqual({
			allow: true,
			user: 'u',
			meta: { a: 1 },
			rooms: ['r'],
			allow_rooms: ['x.*'],
			session: 's'
		});
	});
});
