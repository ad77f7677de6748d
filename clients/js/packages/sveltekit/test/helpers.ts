import { connect, type Msg, type NatsConnection } from 'nats';
import WebSocket from 'ws';
import { startNode, type NodeOptions, type TestNode } from '../../../e2e/node.js';

export { startNode, type TestNode };

/** A browser stand-in: a real WebSocket to the node, recording what it gets. */
export class Browser {
	readonly ws: WebSocket;
	readonly got: Array<Record<string, unknown>> = [];
	readonly opened: Promise<void>;
	readonly closed: Promise<{ code: number; reason: string }>;
	/** The HTTP status of a refused upgrade. */
	readonly refused: Promise<{ status: number; body: string }>;
	#id = 1;

	constructor(url: string, origin?: string) {
		this.ws = new WebSocket(url, origin ? { origin } : {});
		this.ws.on('message', (d) => {
			for (const line of String(d).split('\n')) if (line) this.got.push(JSON.parse(line) as Record<string, unknown>);
		});
		this.opened = new Promise((resolve, reject) => {
			this.ws.once('open', () => resolve());
			this.ws.once('error', reject);
		});
		this.opened.catch(() => {});
		this.closed = new Promise((resolve) => this.ws.once('close', (code, reason) => resolve({ code, reason: String(reason) })));
		this.refused = new Promise((resolve) =>
			this.ws.once('unexpected-response', (_req, res) => {
				let body = '';
				res.on('data', (c: Buffer) => (body += String(c)));
				res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
			})
		);
	}

	send(msg: Record<string, unknown>): number {
		const id = this.#id++;
		this.ws.send(JSON.stringify({ ...msg, id }));
		return id;
	}

	/** Waits for a message matching `pred` (already received ones count). */
	async next(pred: (m: Record<string, unknown>) => boolean, timeout = 5_000, what = 'message'): Promise<Record<string, unknown>> {
		const end = Date.now() + timeout;
		for (;;) {
			const m = this.got.find(pred);
			if (m) return m;
			if (Date.now() > end) throw new Error(`no ${what} within ${timeout} ms; got ${JSON.stringify(this.got)}`);
			await sleep(10);
		}
	}

	welcome(): Promise<Record<string, unknown>> {
		return this.next((m) => m.type === 'welcome', 5_000, 'welcome');
	}

	event(event: string, timeout?: number): Promise<Record<string, unknown>> {
		return this.next((m) => m.type === 'event' && m.event === event, timeout, `event ${event}`);
	}

	close(): void {
		this.ws.close();
	}
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Polls `f` until it is truthy. */
export async function eventually<T>(what: string, f: () => T | Promise<T>, timeout = 5_000): Promise<T> {
	const end = Date.now() + timeout;
	for (;;) {
		const v = await f();
		if (v) return v;
		if (Date.now() > end) throw new Error(`${what}: still ${JSON.stringify(v)} after ${timeout} ms`);
		await sleep(10);
	}
}

/** Collects what arrives on `subject`. */
export function record(nc: NatsConnection, subject: string): Msg[] {
	const got: Msg[] = [];
	nc.subscribe(subject, { callback: (err, m) => !err && got.push(m) });
	return got;
}

export function json(m: Msg): Record<string, unknown> {
	return JSON.parse(new TextDecoder().decode(m.data)) as Record<string, unknown>;
}

export async function natsTo(node: TestNode): Promise<NatsConnection> {
	return connect({ servers: node.nats, name: 'test' });
}

export const baseRoutes: NodeOptions['routes'] = [
	{ path: '/public', auth: 'public', rooms: ['lobby'] },
	{ path: '/chat', auth: 'public', rooms: ['lobby'], allow: ['chat.*'] },
	{ path: '/hooked', auth: 'hook', rooms: ['lobby'] }
];
