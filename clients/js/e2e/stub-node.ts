/**
 * An in-process stand-in for a roomcast cluster, speaking DESIGN.md's wire
 * protocol, for browser tests of the client and the demo page before (and
 * besides) the Go node: several "nodes" (HTTP + WebSocket servers) share room
 * state, the way nodes share NATS. Kill a node to drop its sockets like a crash.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import http from 'node:http';
import type net from 'node:net';
import { extname, join, normalize } from 'node:path';
import { WebSocketServer, type WebSocket } from 'ws';

interface Member {
	session: string;
	user: string;
	meta: unknown;
	connected_at: number;
	ws: WebSocket;
}

const types: Record<string, string> = { '.html': 'text/html; charset=utf-8', '.js': 'text/javascript', '.css': 'text/css' };

export class StubCluster {
	rooms = new Map<string, Map<string, Member>>();
	keys = new Map<string, string>();
	nodes: StubNode[] = [];
	/** false: POST /_/demo/key answers 404 (the page falls back to /_/demo/ws). */
	demoKeys = true;
	readonly dist: string;

	constructor(dist: string) {
		this.dist = dist;
	}

	async start(id: string): Promise<StubNode> {
		const n = new StubNode(this, id);
		await n.listen();
		this.nodes.push(n);
		return n;
	}

	broadcast(room: string, msg: unknown, except?: string): void {
		const data = JSON.stringify(msg);
		for (const m of this.rooms.get(room)?.values() ?? []) if (m.session !== except) m.ws.send(data);
	}

	list(room: string) {
		return [...(this.rooms.get(room)?.values() ?? [])].map(({ session, user, meta, connected_at }) => ({ session, user, meta, connected_at }));
	}

	leave(room: string, m: Member): void {
		const members = this.rooms.get(room);
		if (!members?.delete(m.session)) return;
		this.broadcast(room, { type: 'session:disconnected', room, session: m.session, user: m.user, meta: m.meta, count: members.size });
	}

	async close(): Promise<void> {
		await Promise.all(this.nodes.map((n) => n.kill()));
	}
}

export class StubNode {
	readonly id: string;
	port = 0;
	#c: StubCluster;
	#http: http.Server;
	#wss = new WebSocketServer({ noServer: true });
	#tcp = new Set<net.Socket>();
	sockets = new Set<WebSocket>();

	constructor(c: StubCluster, id: string) {
		this.#c = c;
		this.id = id;
		this.#http = http.createServer((req, res) => void this.#serve(req, res));
		this.#http.on('connection', (s) => {
			this.#tcp.add(s);
			s.on('close', () => this.#tcp.delete(s));
		});
		this.#http.on('upgrade', (req, sock, head) => {
			const url = new URL(req.url ?? '/', 'http://x');
			let user = 'anonymous';
			if (url.pathname.startsWith('/_/connect/')) {
				const key = url.pathname.slice('/_/connect/'.length);
				const u = this.#c.keys.get(key);
				if (u === undefined) {
					sock.end('HTTP/1.1 401 Unauthorized\r\ncontent-type: application/json\r\n\r\n{"error":"key invalid"}');
					return;
				}
				this.#c.keys.delete(key);
				user = u;
			} else if (url.pathname !== '/_/demo/ws') {
				sock.destroy();
				return;
			}
			this.#wss.handleUpgrade(req, sock, head, (ws) => this.#session(ws, user));
		});
	}

	get url(): string {
		return `http://127.0.0.1:${this.port}`;
	}

	async listen(): Promise<void> {
		await new Promise<void>((r) => this.#http.listen(0, '127.0.0.1', r));
		this.port = (this.#http.address() as net.AddressInfo).port;
	}

	async #serve(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
		const url = new URL(req.url ?? '/', 'http://x');
		if (req.method === 'POST' && url.pathname === '/_/demo/key') {
			if (!this.#c.demoKeys) return void res.writeHead(404).end('not found');
			let body = '';
			for await (const chunk of req) body += chunk;
			const key = randomBytes(16).toString('base64url');
			this.#c.keys.set(key, String((JSON.parse(body) as { user?: string }).user ?? 'anonymous'));
			res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ url: `/_/connect/${key}` }));
			return;
		}
		if (url.pathname === '/metrics') {
			res.writeHead(200, { 'content-type': 'text/plain' }).end(`roomcast_connections ${this.sockets.size}\n`);
			return;
		}
		const rel = url.pathname === '/' ? 'index.html' : normalize(url.pathname).replace(/^\/+/, '');
		try {
			const data = await readFile(join(this.#c.dist, rel));
			res.writeHead(200, { 'content-type': types[extname(rel)] ?? 'application/octet-stream' }).end(data);
		} catch {
			res.writeHead(404).end('not found');
		}
	}

	#session(ws: WebSocket, user: string): void {
		this.sockets.add(ws);
		const me = { session: randomUUID(), user, connected_at: Date.now() };
		const joined = new Map<string, Member>();
		const send = (...msgs: unknown[]) => ws.send(msgs.map((m) => JSON.stringify(m)).join('\n'));
		send({ type: 'welcome', session: me.session, node: this.id, user, meta: {}, rooms: [], ping_interval: 5 });
		ws.on('message', (raw) => {
			let m: Record<string, unknown>;
			try {
				m = JSON.parse(String(raw)) as Record<string, unknown>;
			} catch {
				return send({ type: 'error', code: 'bad_request', message: 'invalid JSON' });
			}
			const id = m.id;
			const room = String(m.room ?? '');
			switch (m.type) {
				case 'join': {
					const member: Member = { ...me, meta: m.meta ?? {}, ws };
					let members = this.#c.rooms.get(room);
					if (!members) this.#c.rooms.set(room, (members = new Map()));
					const fresh = !members.has(me.session);
					members.set(me.session, member);
					joined.set(room, member);
					// ack and list in one frame: the client must split.
					send({ type: 'ack', id }, { type: 'session:list', room, sessions: this.#c.list(room) });
					if (fresh) this.#c.broadcast(room, { type: 'session:connected', room, session: me.session, user, meta: member.meta, count: members.size, connected_at: me.connected_at }, me.session);
					return;
				}
				case 'leave': {
					const member = joined.get(room);
					joined.delete(room);
					if (member) this.#c.leave(room, member);
					return send({ type: 'ack', id });
				}
				case 'publish':
					if (!joined.has(room)) return send({ type: 'error', id, code: 'forbidden', message: `not in ${room}` });
					send({ type: 'ack', id });
					return this.#c.broadcast(room, { type: 'event', room, event: m.event, data: m.data, from: me.session }, m.echo === false ? me.session : undefined);
				case 'presence':
					return send({ type: 'ack', id }, { type: 'session:list', room, sessions: this.#c.list(room) });
				case 'ping':
					return send({ type: 'pong' });
				default:
					return send({ type: 'error', id, code: 'bad_request', message: `unknown type ${String(m.type)}` });
			}
		});
		ws.on('close', () => {
			this.sockets.delete(ws);
			for (const [room, member] of joined) this.#c.leave(room, member);
		});
	}

	/** Like SIGTERM: refuse new connections, close every session with 1001. */
	async drain(): Promise<void> {
		const closed = new Promise<void>((r) => this.#http.close(() => r()));
		for (const ws of this.sockets) ws.close(1001, 'node draining');
		for (const s of this.#tcp) if (!s.destroyed) s.end();
		await closed;
	}

	/** Like a crash: every TCP connection dropped without a close frame, the port closed. */
	async kill(): Promise<void> {
		for (const s of this.#tcp) s.destroy();
		for (const ws of this.sockets) ws.terminate();
		await new Promise<void>((r) => this.#http.close(() => r()));
	}
}
