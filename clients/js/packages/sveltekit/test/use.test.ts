/**
 * use(): keys minted over rc.keys.mint by a real node, sockets driven by the
 * lifecycle subjects, control of real sessions, cleanup of keys never
 * redeemed. NATS and the node are real; a few tests also publish the
 * contract's JSON themselves, as a node would, to reach cases a live socket
 * cannot (an error event, a close before the key is redeemed).
 */
import type { NatsConnection } from 'nats';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { CLOSE_KEY_EXPIRED, createRoomcast, type Roomcast, type RoomcastSocket, type SocketCloseEvent } from '../src/server/index.js';
import { Browser, baseRoutes, eventually, json, natsTo, record, sleep, startNode, type TestNode } from './helpers.js';

type Events = { message: unknown; chat: { text: string } };
type Meta = { name: string };

let node: TestNode;
let nc: NatsConnection;
let rc: Roomcast<Events, Meta>;
const quiet = { warn: () => {}, error: () => {} };

beforeAll(async () => {
	node = await startNode({ routes: baseRoutes });
	nc = await natsTo(node);
});
afterAll(async () => {
	await nc?.close();
	await node?.stop();
});
afterEach(async () => {
	await rc?.close({ timeout: 200 });
});

const connectEvent = (session: string, extra: Record<string, unknown> = {}) =>
	JSON.stringify({ type: 'connect', session, user: 'ada', meta: { name: 'Ada' }, node: 'n-test', route: '', remote: '127.0.0.1:5555', at: Date.now(), ...extra });

/** use() with a handler that records its socket and events. */
async function useSocket(opts: Parameters<Roomcast<Events, Meta>['use']>[2] = {}, locals?: unknown) {
	let socket!: RoomcastSocket<Events, Meta>;
	const seen: string[] = [];
	const messages: unknown[] = [];
	const closes: SocketCloseEvent<Events, Meta>[] = [];
	const { url } = await rc.use({ locals }, (s) => {
		socket = s;
		seen.push(`handler:${s.readyState}`);
		s.send('Connected!');
		s.addEventListener('open', () => seen.push('open'));
		s.addEventListener('message', (m) => messages.push([m.event, m.data, m.user]));
		s.addEventListener('close', (c) => closes.push(c));
	}, opts);
	return { url, socket, seen, messages, closes };
}

describe('use()', () => {
	it('mints a one-time key for a pre-assigned session and returns its URL', async () => {
		rc = createRoomcast<Events, Meta>({ nats: node.nats });
		const { url, socket, seen } = await useSocket({ meta: { name: 'Ada' }, rooms: ['lobby'] }, { user: { id: 'ada', name: 'Ada' } });
		expect(url).toMatch(/^\/_\/connect\/[A-Za-z0-9_-]{20,}$/);
		expect(seen).toEqual(['handler:0']);
		expect(socket.user).toBe('ada'); // from event.locals.user.id
		expect(socket.meta).toEqual({ name: 'Ada' });
		expect(rc.sockets.get(socket.id)).toBe(socket);

		// The key is real: the node redeems it for exactly that session, once.
		const b = new Browser(`${node.ws}${url}`);
		const w = await b.welcome();
		expect(w).toMatchObject({ session: socket.id, user: 'ada', meta: { name: 'Ada' }, rooms: ['lobby'] });
		b.close();
		const again = new Browser(`${node.ws}${url}`);
		expect((await again.refused).status).toBe(401);
	});

	it('returns absolute ws(s) URLs on publicUrl', async () => {
		rc = createRoomcast<Events, Meta>({ nats: node.nats, publicUrl: 'https://rt.example.com' });
		const { url } = await rc.use(undefined, () => {});
		expect(url).toMatch(/^wss:\/\/rt\.example\.com\/_\/connect\/[A-Za-z0-9_-]+$/);
	});

	it('talks to the browser end to end: Connected! on open, client messages in, answers out', async () => {
		rc = createRoomcast<Events, Meta>({ nats: node.nats });
		let socket!: RoomcastSocket<Events, Meta>;
		const { url } = await rc.use({ locals: { user: 'bob' } }, (s) => {
			socket = s;
			s.send('Connected!');
			s.addEventListener('message', (m) => s.send(`You said: ${String(m.data)}`));
		});
		const b = new Browser(`${node.ws}${url}`);
		await b.welcome();
		expect((await b.event('message')).data).toBe('Connected!');
		await eventually('open', () => socket.readyState === 1);
		expect(socket.node).toBe(`test-${node.port}`);
		b.send({ type: 'send', event: 'message', data: 'hello' });
		await b.next((m) => m.type === 'event' && m.data === 'You said: hello');
		b.close();
		await eventually('closed', () => socket.readyState === 3);
		expect(rc.sockets.size).toBe(0);
	});

	it('joins, leaves and closes a real session from the back-end', async () => {
		rc = createRoomcast<Events, Meta>({ nats: node.nats });
		let socket!: RoomcastSocket<Events, Meta>;
		const closes: SocketCloseEvent<Events, Meta>[] = [];
		const { url } = await rc.use({ locals: { user: 'erin' } }, (s) => {
			socket = s;
			s.addEventListener('close', (e) => closes.push(e));
		});
		const b = new Browser(`${node.ws}${url}`);
		await b.welcome();
		await eventually('open', () => socket.readyState === 1);
		await socket.join('chat.backend', { name: 'Erin' });
		const list = await b.next((m) => m.type === 'session:list' && m.room === 'chat.backend');
		expect(list.sessions).toMatchObject([{ session: socket.id, meta: { name: 'Erin' } }]);
		await socket.leave('chat.backend');
		await b.next((m) => m.type === 'session:disconnected' && m.room === 'chat.backend');
		socket.close(4000, 'bye from the back-end');
		expect(await b.closed).toEqual({ code: 4000, reason: 'bye from the back-end' });
		await eventually('close event', () => closes.length === 1);
		expect(closes[0]).toMatchObject({ code: 4000, wasClean: true });
		expect(rc.sockets.size).toBe(0);
	});

	it('closes live sessions with 1012 on graceful shutdown', async () => {
		rc = createRoomcast<Events, Meta>({ nats: node.nats });
		const browsers: Browser[] = [];
		for (const user of ['f1', 'f2']) {
			const { url } = await rc.use({ locals: { user } }, () => {});
			const b = new Browser(`${node.ws}${url}`);
			await b.welcome();
			browsers.push(b);
		}
		await eventually('both open', () => [...rc.sockets.values()].every((s) => s.readyState === 1) && rc.sockets.size === 2);
		const t0 = Date.now();
		await rc.close();
		expect(Date.now() - t0).toBeLessThan(1_500);
		for (const b of browsers) expect((await b.closed).code).toBe(1012);
		expect(rc.sockets.size).toBe(0);
	});

	it('delivers client sends as message events, opening the socket on the first one', async () => {
		rc = createRoomcast<Events, Meta>({ nats: node.nats });
		const { url, socket, seen, messages } = await useSocket({}, { user: 'carol' });
		const b = new Browser(`${node.ws}${url}`);
		await b.welcome();
		b.send({ type: 'send', event: 'chat', data: { text: 'hi' } });
		await eventually('message', () => messages.length === 1);
		expect(messages).toEqual([['chat', { text: 'hi' }, 'carol']]);
		expect(socket.readyState).toBe(1);
		expect(seen).toEqual(['handler:0', 'open']);
		// What the handler sent while connecting reached the browser on open.
		expect((await b.event('message')).data).toBe('Connected!');
		b.close();
	});

	it('fires close 4001 for a key never redeemed and releases its subscription', async () => {
		rc = createRoomcast<Events, Meta>({ nats: node.nats, expiryGrace: 100 });
		const subs = () => (rc as unknown as { connection(): Promise<NatsConnection> }).connection().then((c) => (c as unknown as { protocol: { subscriptions: { size(): number } } }).protocol.subscriptions.size());
		await rc.mint(); // the request inbox subscription exists from here on
		const before = await subs();
		const t0 = Date.now();
		const { socket, closes, url } = await useSocket({ ttl: '1s' });
		expect(await subs()).toBe(before + 1);
		await eventually('close', () => closes.length === 1, 4_000);
		const took = Date.now() - t0;
		expect(took).toBeGreaterThanOrEqual(1_000);
		expect(took).toBeLessThan(2_500);
		expect(closes[0]).toMatchObject({ code: CLOSE_KEY_EXPIRED, wasClean: false });
		expect(socket.readyState).toBe(3);
		expect(rc.sockets.size).toBe(0);
		expect(await subs()).toBe(before);
		// And the node agrees: the key is gone.
		expect((await new Browser(`${node.ws}${url}`).refused).status).toBe(401);
	});

	it('follows the lifecycle subjects: connect opens, error and close fire', async () => {
		rc = createRoomcast<Events, Meta>({ nats: node.nats });
		const { socket, seen, closes } = await useSocket();
		const sent = record(nc, `rc.session.${socket.id}`);
		const errors: unknown[] = [];
		socket.onerror = (e) => errors.push([e.code, e.message]);
		await nc.flush();
		nc.publish('rc.events.connect', connectEvent(socket.id));
		await eventually('open', () => socket.readyState === 1);
		expect(seen).toEqual(['handler:0', 'open']);
		expect(socket.node).toBe('n-test');
		expect(socket.remote).toBe('127.0.0.1:5555');
		await eventually('queued send', () => sent.length === 1);
		expect(new TextDecoder().decode(sent[0]!.data)).toBe('"Connected!"');
		expect(sent[0]!.headers?.get('Rc-Event')).toBe('message');

		socket.emit('chat', { text: 'direct' });
		await eventually('emit', () => sent.length === 2);
		expect(sent[1]!.headers?.get('Rc-Event')).toBe('chat');
		expect(json(sent[1]!)).toEqual({ text: 'direct' });

		nc.publish('rc.events.error', JSON.stringify({ type: 'error', session: socket.id, user: '', node: 'n-test', code: 'too_large', message: 'frame too large', at: Date.now() }));
		await eventually('error', () => errors.length === 1);
		expect(errors).toEqual([['too_large', 'frame too large']]);

		nc.publish('rc.events.close', JSON.stringify({ type: 'close', session: socket.id, user: '', node: 'n-test', code: 1001, reason: 'draining', at: Date.now() }));
		await eventually('close', () => closes.length === 1);
		expect(closes[0]).toMatchObject({ code: 1001, reason: 'draining', wasClean: true });
		expect(rc.sockets.size).toBe(0);
		socket.send('after close');
		await sleep(50);
		expect(sent).toHaveLength(2);
	});

	it('closes through rc.control.kick and publishes to rooms as the session', async () => {
		rc = createRoomcast<Events, Meta>({ nats: node.nats, closeTimeout: 300 });
		const { socket, closes } = await useSocket();
		const kicks = record(nc, 'rc.control.kick');
		const room = record(nc, 'rc.room.chat.general');
		await nc.flush();
		nc.publish('rc.events.connect', connectEvent(socket.id));
		await eventually('open', () => socket.readyState === 1);
		socket.publish('chat.general', 'chat', { text: 'as the session' });
		expect(() => socket.publish('bad room', 'chat', { text: '' })).toThrow(/invalid/);
		await eventually('room publish', () => room.length === 1);
		expect(room[0]!.headers?.get('Rc-From')).toBe(socket.id);
		expect(room[0]!.headers?.get('Rc-Event')).toBe('chat');
		expect(() => socket.close(1006)).toThrow(/invalid/);
		socket.close(4000, 'bye');
		expect(socket.readyState).toBe(2);
		await eventually('kick', () => kicks.length === 1);
		expect(json(kicks[0]!)).toEqual({ session: socket.id, code: 4000, reason: 'bye' });
		// No node holds this session, so no close event comes: it fires after closeTimeout.
		await eventually('close', () => closes.length === 1, 2_000);
		expect(closes[0]).toMatchObject({ code: 4000, reason: 'bye' });
	});

	it('kicks a session closed before its key was redeemed, when it shows up', async () => {
		rc = createRoomcast<Events, Meta>({ nats: node.nats });
		const { socket, closes } = await useSocket();
		socket.close(4003, 'changed my mind');
		expect(closes).toHaveLength(1);
		const kicks = record(nc, 'rc.control.kick');
		await nc.flush();
		nc.publish('rc.events.connect', connectEvent(socket.id));
		await eventually('kick', () => kicks.length === 1);
		expect(json(kicks[0]!)).toMatchObject({ session: socket.id, code: 4003 });
		expect(rc.sockets.size).toBe(0);
	});

	it('joins and leaves rooms through rc.control.join / rc.control.leave', async () => {
		rc = createRoomcast<Events, Meta>({ nats: node.nats, requestTimeout: 300 });
		const { socket } = await useSocket();
		const asked: unknown[] = [];
		const sub = nc.subscribe('rc.control.*', {
			callback: (_e, m) => {
				if (!m.reply) return;
				const body = json(m);
				asked.push([m.subject, body]);
				m.respond(JSON.stringify(body.room === 'secret' ? { error: { code: 'forbidden', message: 'no' } } : {}));
			}
		});
		await nc.flush();
		const joined = socket.join('chat.a'); // before open: waits for the connection
		await sleep(50);
		expect(asked).toEqual([]);
		nc.publish('rc.events.connect', connectEvent(socket.id));
		await joined;
		await socket.leave('chat.a');
		await socket.join('chat.m', { name: 'in chat.m' });
		await expect(socket.join('secret')).rejects.toMatchObject({ code: 'forbidden' });
		await expect(socket.join('bad room')).rejects.toMatchObject({ code: 'bad_request' });
		expect(asked).toEqual([
			['rc.control.join', { session: socket.id, room: 'chat.a' }],
			['rc.control.leave', { session: socket.id, room: 'chat.a' }],
			['rc.control.join', { session: socket.id, room: 'chat.m', meta: { name: 'in chat.m' } }],
			['rc.control.join', { session: socket.id, room: 'secret' }]
		]);
		sub.unsubscribe();
		await nc.flush();
		// Nobody answers (no node holds the session, or it is older than rc.control.join).
		await expect(socket.join('chat.b')).rejects.toMatchObject({ code: expect.stringMatching(/unavailable|timeout/) });
	});

	it('reports mint failures to the caller and the handler', async () => {
		rc = createRoomcast<Events, Meta>({ nats: node.nats });
		const closes: number[] = [];
		const errors: string[] = [];
		await expect(
			rc.use(undefined, (s) => {
				s.addEventListener('error', (e) => errors.push(e.code));
				s.addEventListener('close', (e) => closes.push(e.code));
			}, { rooms: ['no spaces allowed'] })
		).rejects.toMatchObject({ code: 'bad_request' });
		expect(errors).toEqual(['mint_failed']);
		expect(closes).toEqual([1011]);
		expect(rc.sockets.size).toBe(0);
	});

	it('says what is wrong when NATS is not there', async () => {
		rc = createRoomcast<Events, Meta>({ nats: 'nats://127.0.0.1:1' });
		await expect(rc.use(undefined, () => {})).rejects.toThrow(/cannot reach NATS at nats:\/\/127\.0\.0\.1:1: start a roomcast node/);
	});

	it('uses a connection it is given and leaves it open on close()', async () => {
		const own = await natsTo(node);
		rc = createRoomcast<Events, Meta>({ nats: own });
		const { url } = await rc.use(undefined, () => {});
		expect(url).toMatch(/^\/_\/connect\//);
		await rc.close();
		expect(own.isClosed()).toBe(false);
		await own.close();
	});

	it('publishes to rooms, sessions and users as the server', async () => {
		rc = createRoomcast<Events, Meta>({ nats: node.nats });
		const got = record(nc, 'rc.>');
		await nc.flush();
		await rc.publish('lobby', 'chat', { text: 'all' });
		await rc.sendTo('s1', 'chat', { text: 'one' });
		await rc.sendToUser('ada', 'chat', { text: 'every tab' });
		await rc.kick({ user: 'mallory', code: 4003 });
		await eventually('four', () => got.filter((m) => !m.subject.startsWith('rc.events') && !m.subject.startsWith('rc.presence')).length >= 4);
		const mine = got.filter((m) => ['rc.room.lobby', 'rc.session.s1', 'rc.user.ada', 'rc.control.kick'].includes(m.subject));
		expect(mine.map((m) => [m.subject, m.headers?.get('Rc-Event') ?? '', json(m)])).toEqual([
			['rc.room.lobby', 'chat', { text: 'all' }],
			['rc.session.s1', 'chat', { text: 'one' }],
			['rc.user.ada', 'chat', { text: 'every tab' }],
			['rc.control.kick', '', { user: 'mallory', code: 4003 }]
		]);
	});

	it('replaces an instance with the same id (a module re-run by Vite) and closes the old one with 1012', async () => {
		const old = createRoomcast<Events, Meta>({ nats: node.nats, id: 'hmr', logger: quiet });
		const { url } = await old.use(undefined, () => {});
		expect(url).toBeTruthy();
		const oldSocket = [...old.sockets.values()][0]!;
		const closes: number[] = [];
		oldSocket.addEventListener('close', (e) => closes.push(e.code));
		rc = createRoomcast<Events, Meta>({ nats: node.nats, id: 'hmr' });
		await rc.start();
		await eventually('old closed', () => closes.length === 1);
		expect(closes).toEqual([1012]);
		await expect(old.use(undefined, () => {})).rejects.toMatchObject({ code: 'closed' });
	});
});

