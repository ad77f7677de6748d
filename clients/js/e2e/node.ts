/**
 * One real roomcast-node for tests: embedded NATS on a free port, HTTP on
 * another, optional continuous routes. Used by @roomcast/sveltekit's unit
 * tests (real NATS, real node) and the example's browser e2e.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, nodeBinary, waitReady } from './cluster.js';

export interface RouteConfig {
	path: string;
	auth: 'public' | 'key' | 'hook';
	rooms?: string[];
	allow?: string[];
}

export interface TestNode {
	/** http://127.0.0.1:<port> */
	http: string;
	/** ws://127.0.0.1:<port> */
	ws: string;
	/** nats://127.0.0.1:<port> (the embedded NATS) */
	nats: string;
	port: number;
	proc: ChildProcess;
	/** Everything the node logged so far. */
	logs(): string;
	stop(): Promise<void>;
}

export interface NodeOptions {
	routes?: RouteConfig[];
	/** More YAML for the node's --config, after the routes (e.g. `history:`). */
	config?: string;
	/** Extra flags. */
	args?: string[];
	/** Fixed ports (default: free ones). */
	port?: number;
	natsPort?: number;
	id?: string;
}

function yaml(routes: RouteConfig[]): string {
	const list = (xs: string[] | undefined) => `[${(xs ?? []).map((x) => JSON.stringify(x)).join(', ')}]`;
	return `routes:\n${routes.map((r) => `  - path: ${JSON.stringify(r.path)}\n    auth: ${r.auth}\n    rooms: ${list(r.rooms)}\n    allow: ${list(r.allow)}\n`).join('')}`;
}

export async function startNode(o: NodeOptions = {}): Promise<TestNode> {
	const dir = mkdtempSync(join(tmpdir(), 'roomcast-node-'));
	const port = o.port ?? (await freePort());
	const natsPort = o.natsPort ?? (await freePort());
	const args = [
		'--node-id', o.id ?? `test-${port}`,
		'--listen', `127.0.0.1:${port}`,
		'--nats-listen', `127.0.0.1:${natsPort}`,
		'--data-dir', join(dir, 'data'),
		'--demo', 'off',
		'--log-level', 'debug',
		'--drain-window', '100ms',
		'--drain-grace', '3s',
		...(o.args ?? [])
	];
	if (o.routes?.length || o.config) {
		const cfg = join(dir, 'roomcast.yaml');
		writeFileSync(cfg, (o.routes?.length ? yaml(o.routes) : '') + (o.config ?? ''));
		args.push('--config', cfg);
	}
	const proc = spawn(nodeBinary(), args, { stdio: ['ignore', 'pipe', 'pipe'] });
	const out: string[] = [];
	proc.stdout!.on('data', (d) => out.push(String(d)));
	proc.stderr!.on('data', (d) => out.push(String(d)));
	const http = `http://127.0.0.1:${port}`;
	try {
		await waitReady(http, proc, 30_000);
	} catch (err) {
		proc.kill('SIGKILL');
		throw new Error(`${(err as Error).message}\n${out.join('')}`);
	}
	return {
		http,
		ws: `ws://127.0.0.1:${port}`,
		nats: `nats://127.0.0.1:${natsPort}`,
		port,
		proc,
		logs: () => out.join(''),
		stop: async () => {
			if (proc.exitCode === null && proc.signalCode === null) {
				proc.kill('SIGTERM');
				const killer = setTimeout(() => proc.kill('SIGKILL'), 5_000);
				await new Promise((r) => proc.once('exit', r));
				clearTimeout(killer);
			}
			rmSync(dir, { recursive: true, force: true });
		}
	};
}
