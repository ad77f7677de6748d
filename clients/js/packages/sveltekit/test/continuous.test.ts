/**
 * continuous(): sessions of a route handed to exactly one replica, guards
 * answering the node's auth hook, graceful shutdown with 1012. Real node,
 * real NATS; two Roomcast instances play two SvelteKit replicas.
 */
import type { NatsConnection } from 'nats';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createRoomcast, deny, type GuardRequest, type Roomcast, type RoomcastSocket } from '../src/server/index.js';
import { Browser, baseRoutes, eventually, json, natsTo, record, sleep, startNode, type TestNode } from './helpers.js';

type Meta = { name?: string };

let node: TestNode;
let nc: NatsConnection;
let replicas: Roomcast<Record<string, unknown>, Meta>[] = [];

beforeAll(async () => {
	node = await startNode({ routes: baseRoutes });
	nc = await natsTo(node);
});
afterAll(async () => {
	await nc?.close();
	await node?.stop();
});
afterEach(async () => {
	await Promise.all(replicas.map((r) => r.close({ timeout: 200 })));
	replicas = [];
});

function replica(id: string): Roomcast<Record<string, unknown>, Meta> {
	const r = createRoomcast<Record<string, unknown>, Meta>({ nats: node.nats, id, closeTimeout: 300 });
	replicas.push(r);
	return r;
}

const connect = (session: string, route: string) =>
	JSON.stringify({ type: 'connect', session, user: `u-${session}`, meta: { name: session }, node: 'n-test', route, remote: '127.0.0.1:1', at: Date.now() });

describe('continuous()', () => {
	it('hands each session of the route to exactly one replica', async () => {
		const owners = new Map<string, string[]>();
		const opened: string[] = [];
		for (const name of ['a', 'b']) {
			replica(name).continuous('/chat', (s) => {
				owners.set(s.id, [...(owners.get(s.id) ?? []), name]);
				s.addEventListener('open', () => opened.push(s.id));
			});
		}
		await Promise.all(replicas.map((r) => r.start()));
		await sleep(50); // the queue subscriptions are in
		for (let i = 0; i < 20; i++) nc.publish('rc.events.connect', connect(`s${i}`, '/chat'));
		nc.publish('rc.events.connect', connect('other', '/elsewhere'));
		nc.publish('rc.events.connect', connect('keyed', ''));
		await eventually('20 sessions', () => opened.length === 20);
		await sleep(100);
		expect([...owners.values()].every((o) => o.length === 1)).toBe(true);
		expect(owners.size).toBe(20);
		expect(owners.has('other') || owners.has('keyed')).toBe(false);
		const counts = ['a', 'b'].map((n) => [...owners.values()].filter((o) => o[0] === n).length);
		expect(counts[0]! + counts[1]!).toBe(20);
		expect(replicas[0]!.sockets.size + replicas[1]!.sockets.size).toBe(20);
	});

	it('gives the handler the socket: user and meta from the connect event, client sends, answers', async () => {
		const got: unknown[] = [];
		let socket!: RoomcastSocket<Record<string, unknown>, Meta>;
		replica('a').continuous('/chat', (s) => {
			socket = s;
			s.send('Welcome to /chat');
			s.addEventListener('message', (m) => {
				got.push([m.event, m.data]);
				s.send(`Echo: ${String(m.data)}`);
			});
		});
		await replicas[0]!.start();
		const out = record(nc, 'rc.session.c1');
		await sleep(50);
		nc.publish('rc.events.connect', connect('c1', '/chat'));
		// Sent right after the connect event, on the node's connection: must not be lost.
		const h = (await import('nats')).headers();
		h.set('Rc-Event', 'message');
		h.set('Rc-User', 'u-c1');
		nc.publish('rc.send.c1', JSON.stringify('first'), { headers: h });
		await eventually('message', () => got.length === 1);
		expect(got).toEqual([['message', 'first']]);
		expect(socket).toMatchObject({ id: 'c1', user: 'u-c1', meta: { name: 'c1' }, route: '/chat', kind: 'continuous', readyState: 1 });
		await eventually('two out', () => out.length === 2);
		expect(out.map((m) => json(m as never) as unknown)).toEqual(['Welcome to /chat', 'Echo: first']);
	});

	it('runs the echo route end to end on a real node', async () => {
		replica('a').continuous('/chat', (s) => {
			s.send('Welcome to /chat');
			s.addEventListener('message', (m) => s.send(`Echo: ${String(m.data)}`));
		});
		await replicas[0]!.start();
		await sleep(50);
		const b = new Browser(`${node.ws}/chat`);
		await b.welcome();
		expect((await b.event('message')).data).toBe('Welcome to /chat');
		b.send({ type: 'send', event: 'message', data: 'ping' });
		await b.next((m) => m.type === 'event' && m.data === 'Echo: ping');
		b.close();
		await eventually('released', () => replicas[0]!.sockets.size === 0);
	});

	it('answers the auth hook with the guard: deny, grant with user and meta', async () => {
		const asked: GuardRequest[] = [];
		replica('a').continuous('/hooked', () => {}, {
			guard: (req) => {
				asked.push(req);
				const token = req.query.get('token') ?? req.cookies.session;
				if (!token) return deny(401, 'sign in first');
				if (token === 'banned') return false;
				return { user: `user-${token}`, meta: { name: token }, allow: ['chat.*'] };
			}
		});
		await replicas[0]!.start();
		await sleep(50);

		const anon = new Browser(`${node.ws}/hooked`);
		const refusal = await anon.refused;
		expect(refusal.status).toBe(401);
		expect(refusal.body).toContain('sign in first');

		const banned = new Browser(`${node.ws}/hooked?token=banned`);
		expect((await banned.refused).status).toBe(403);

		const ok = new Browser(`${node.ws}/hooked?token=ada`, `http://127.0.0.1:${node.port}`);
		expect(await ok.welcome()).toMatchObject({ user: 'user-ada', meta: { name: 'ada' }, rooms: ['lobby'] });
		const id = ok.send({ type: 'join', room: 'chat.x' });
		await ok.next((m) => m.type === 'ack' && m.id === id);
		ok.close();

		expect(asked[2]).toMatchObject({ path: '/hooked', origin: `http://127.0.0.1:${node.port}`, ip: '127.0.0.1', node: `test-${node.port}` });
		expect(asked[2]!.url.searchParams.get('token')).toBe('ada');
	});

	it('a guard on one path never answers for another', async () => {
		replica('a').continuous('/elsewhere', () => {}, { guard: () => true });
		await replicas[0]!.start();
		await sleep(50);
		const t0 = Date.now();
		const b = new Browser(`${node.ws}/hooked`);
		expect((await b.refused).status).toBe(503); // the node waited 3 s for an answer
		expect(Date.now() - t0).toBeGreaterThanOrEqual(2_500);
	});

	it('closes owned sessions with 1012 on graceful shutdown and stops taking new ones', async () => {
		const closes: Array<[string, number]> = [];
		const r = replica('a');
		r.continuous('/chat', (s) => s.addEventListener('close', (e) => closes.push([s.id, e.code])));
		await r.start();
		await sleep(50);
		for (const id of ['g1', 'g2']) nc.publish('rc.events.connect', connect(id, '/chat'));
		await eventually('two sessions', () => r.sockets.size === 2);
		const kicks = record(nc, 'rc.control.kick');
		// Play the node: confirm each kick with a close event.
		const confirm = nc.subscribe('rc.control.kick', {
			callback: (_e, m) => {
				const k = json(m);
				nc.publish('rc.events.close', JSON.stringify({ type: 'close', session: k.session, user: '', node: 'n-test', code: k.code, reason: k.reason, at: Date.now() }));
			}
		});
		await nc.flush();
		const t0 = Date.now();
		await r.close();
		expect(Date.now() - t0).toBeLessThan(1_000);
		expect(kicks.map((m) => json(m)).sort((a, b) => String(a.session).localeCompare(String(b.session)))).toEqual([
			{ session: 'g1', code: 1012, reason: 'service restart' },
			{ session: 'g2', code: 1012, reason: 'service restart' }
		]);
		expect(closes.sort()).toEqual([
			['g1', 1012],
			['g2', 1012]
		]);
		confirm.unsubscribe();
		// A session connecting after the shutdown is not taken.
		nc.publish('rc.events.connect', connect('late', '/chat'));
		await sleep(100);
		expect(r.sockets.size).toBe(0);
		expect(() => r.continuous('/chat', () => {})).toThrow(/closed/);
	});

	it('tells the handler when it throws', async () => {
		const errors: string[] = [];
		const r = createRoomcast({ nats: node.nats, id: 'throws', logger: { warn: () => {}, error: (m: string) => errors.push(m) } });
		replicas.push(r as never);
		r.continuous('/chat', () => {
			throw new Error('boom');
		});
		await r.start();
		await sleep(50);
		nc.publish('rc.events.connect', connect('t1', '/chat'));
		await eventually('logged', () => errors.length === 1);
		expect(errors[0]).toMatch(/handler of session t1 threw/);
		expect(r.sockets.get('t1')?.readyState).toBe(1);
	});
});
