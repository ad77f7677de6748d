/**
 * `@roomcast/sveltekit/vite`: in `vite dev` and `vite preview`, forwards
 * `/_/connect/*` and the continuous route paths to a roomcast node (WebSocket
 * upgrades included), so the browser talks to the page's own origin in
 * development as it does behind a load balancer in production.
 *
 * ```ts
 * // vite.config.ts
 * import { sveltekit } from '@sveltejs/kit/vite';
 * import { roomcast } from '@roomcast/sveltekit/vite';
 * export default defineConfig({ plugins: [sveltekit(), roomcast({ paths: ['/chat'] })] });
 * ```
 */
import http from 'node:http';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import https from 'node:https';
import net from 'node:net';
import type { Duplex } from 'node:stream';
import tls from 'node:tls';

export interface RoomcastViteOptions {
	/** The node. Default: `ROOMCAST_URL` from the environment, else http://127.0.0.1:8080. */
	url?: string;
	/** Continuous route paths to forward, exactly as configured on the node (e.g. "/chat"). */
	paths?: string[];
	/** Also forward these path prefixes (e.g. "/_/demo/"). */
	prefixes?: string[];
}

/** The parts of Vite's Plugin this uses (no import of vite needed at run time). */
export interface RoomcastVitePlugin {
	name: string;
	configureServer(server: { httpServer: Server | null; middlewares: { use(fn: Middleware): void } }): void;
	configurePreviewServer(server: { httpServer: Server | null; middlewares: { use(fn: Middleware): void } }): void;
}

type Middleware = (req: IncomingMessage, res: ServerResponse, next: (err?: unknown) => void) => void;

/** Whether `pathname` goes to the node. */
export function matcher(o: RoomcastViteOptions): (pathname: string) => boolean {
	const paths = new Set(o.paths ?? []);
	const prefixes = ['/_/connect/', ...(o.prefixes ?? [])];
	return (p) => p === '/_/connect' || paths.has(p) || prefixes.some((x) => p.startsWith(x));
}

function pathnameOf(url: string | undefined): string {
	try {
		return new URL(url ?? '/', 'http://localhost').pathname;
	} catch {
		return '';
	}
}

function forwardedFor(req: IncomingMessage): string {
	const prior = req.headers['x-forwarded-for'];
	const peer = req.socket.remoteAddress ?? '';
	return prior ? `${String(prior)}, ${peer}` : peer;
}

/**
 * Pipes an upgrade request to the node byte for byte (Host and Origin kept, so
 * the node's origin check sees the page's origin, as behind a load balancer).
 */
export function proxyUpgrade(target: URL, req: IncomingMessage, socket: Duplex, head: Buffer): void {
	const secure = target.protocol === 'https:' || target.protocol === 'wss:';
	const port = Number(target.port) || (secure ? 443 : 80);
	const host = target.hostname.replace(/^\[|\]$/g, '');
	const up: net.Socket = secure ? tls.connect({ host, port, servername: host }) : net.connect(port, host);
	const fail = (err: Error) => {
		if (socket.writable) {
			const body = JSON.stringify({
				error: { code: 'unavailable', message: `no roomcast node at ${target.origin} (${err.message}): start one with go run ./cmd/node or set ROOMCAST_URL` }
			});
			socket.end(`HTTP/1.1 502 Bad Gateway\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`);
		}
		up.destroy();
	};
	up.once('error', fail);
	up.once(secure ? 'secureConnect' : 'connect', () => {
		up.off('error', fail);
		let head1 = `${req.method ?? 'GET'} ${req.url ?? '/'} HTTP/${req.httpVersion}\r\n`;
		for (let i = 0; i < req.rawHeaders.length; i += 2) {
			if (req.rawHeaders[i]!.toLowerCase() === 'x-forwarded-for') continue;
			head1 += `${req.rawHeaders[i]}: ${req.rawHeaders[i + 1]}\r\n`;
		}
		head1 += `X-Forwarded-For: ${forwardedFor(req)}\r\n\r\n`;
		up.write(head1);
		if (head.length) up.write(head);
		up.pipe(socket).pipe(up);
		const done = () => {
			up.destroy();
			socket.destroy();
		};
		up.on('error', done).on('close', done);
		socket.on('error', done).on('close', done);
	});
}

/** Forwards a plain HTTP request to the node (e.g. a refused key's JSON answer to a non-upgrade GET). */
export function proxyRequest(target: URL, req: IncomingMessage, res: ServerResponse): void {
	const secure = target.protocol === 'https:';
	const headers = { ...req.headers, 'x-forwarded-for': forwardedFor(req) };
	const up = (secure ? https : http).request(
		{ protocol: secure ? 'https:' : 'http:', hostname: target.hostname, port: target.port, method: req.method, path: req.url, headers },
		(r) => {
			res.writeHead(r.statusCode ?? 502, r.headers);
			r.pipe(res);
		}
	);
	up.on('error', (err) => {
		if (!res.headersSent) res.writeHead(502, { 'content-type': 'application/json' });
		res.end(JSON.stringify({ error: { code: 'unavailable', message: `no roomcast node at ${target.origin} (${err.message})` } }));
	});
	req.pipe(up);
}

/**
 * The Vite plugin: forwards `/_/connect/*` and `paths` to the node at `url`
 * (default `ROOMCAST_URL`, else http://127.0.0.1:8080), upgrades included, in
 * `vite dev` and `vite preview`.
 */
export function roomcast(options: RoomcastViteOptions = {}): RoomcastVitePlugin {
	const target = new URL(options.url ?? process.env.ROOMCAST_URL ?? 'http://127.0.0.1:8080');
	const match = matcher(options);
	const attach = (server: { httpServer: Server | null; middlewares: { use(fn: Middleware): void } }) => {
		server.httpServer?.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
			if (match(pathnameOf(req.url))) proxyUpgrade(target, req, socket, head);
		});
		server.middlewares.use((req, res, next) => {
			if (match(pathnameOf(req.url)) && req.headers.upgrade === undefined) return proxyRequest(target, req, res);
			next();
		});
	};
	return {
		name: 'roomcast',
		configureServer: attach,
		configurePreviewServer: attach
	};
}

export default roomcast;
