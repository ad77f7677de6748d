/**
 * What the browser tests run against: real roomcast-node processes, two of
 * them behind a TCP load balancer. Node 0 runs the embedded NATS (not behind
 * the balancer, so that killing a balanced node keeps NATS up); nodes 1 and 2
 * use that NATS, with gossip for node liveness.
 *
 * The binary is built once per run from ./cmd/node (ROOMCAST_NODE_BIN points
 * at a ready one instead, e.g. bin/roomcast-node after `make build`).
 */
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { appendFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LoadBalancer } from './lb.js';

export interface Cluster {
	/** Base URLs of the two balanced nodes. */
	urls: [string, string];
	/** Node ids, as welcome reports them. */
	ids: [string, string];
	/** Base URL of the load balancer over both. */
	lb: string;
	/** Base URL of the node running NATS (not balanced, never killed): e.g. POST /_/publish with `apiKey`. */
	admin: string;
	/** Crash node i (0 or 1): SIGKILL for real nodes. */
	kill(i: number): Promise<void>;
	/** Drain node i: SIGTERM for real nodes (1001 closes spread over --drain-window). Does not wait for the exit. */
	drain(i: number): Promise<void>;
	/** Open WebSocket connections on node i (roomcast_connections from /metrics). */
	connections(i: number): Promise<number>;
	close(): Promise<void>;
}

export const repoRoot = join(import.meta.dirname, '../../..');

async function metricsConnections(base: string): Promise<number> {
	const text = await (await fetch(`${base}/metrics`)).text();
	const m = /^roomcast_connections (\d+(?:\.\d+)?)/m.exec(text);
	if (!m) throw new Error(`no roomcast_connections in ${base}/metrics`);
	return Number(m[1]);
}

export async function freePort(): Promise<number> {
	const s = net.createServer();
	await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
	const port = (s.address() as net.AddressInfo).port;
	await new Promise<void>((r) => s.close(() => r()));
	return port;
}

export async function waitReady(base: string, proc: ChildProcess, ms = 60_000): Promise<void> {
	const end = Date.now() + ms;
	while (Date.now() < end) {
		if (proc.exitCode !== null) throw new Error(`node ${base} exited with ${proc.exitCode}`);
		try {
			if ((await fetch(`${base}/readyz`)).ok) return;
		} catch {
			// not listening yet
		}
		await new Promise((r) => setTimeout(r, 100));
	}
	throw new Error(`node ${base} not ready within ${ms} ms`);
}

let built: string | undefined;

/** The roomcast-node binary: ROOMCAST_NODE_BIN, or ./cmd/node built once per process into a temp dir. */
export function nodeBinary(): string {
	if (process.env.ROOMCAST_NODE_BIN) return process.env.ROOMCAST_NODE_BIN;
	if (!built) {
		const dir = mkdtempSync(join(tmpdir(), 'roomcast-bin-'));
		built = join(dir, 'roomcast-node');
		execFileSync('go', ['build', '-o', built, './cmd/node'], { cwd: repoRoot, stdio: 'inherit' });
		process.once('exit', () => rmSync(dir, { recursive: true, force: true }));
	}
	return built;
}

export interface ClusterOptions {
	/** YAML for every node's --config (e.g. history rooms). */
	config?: string;
	/** --api-key of every node (POST /_/publish, /_/keys). */
	apiKey?: string;
}

export async function startCluster(o: ClusterOptions = {}): Promise<Cluster> {
	const dir = mkdtempSync(join(tmpdir(), 'roomcast-e2e-'));
	const common: string[] = [];
	if (o.config !== undefined) {
		const cfg = join(dir, 'roomcast.yaml');
		writeFileSync(cfg, o.config);
		common.push('--config', cfg);
	}
	if (o.apiKey !== undefined) common.push('--api-key', o.apiKey);
	const bin = nodeBinary();
	const procs: ChildProcess[] = [];
	const logs: string[] = [];
	const run = async (id: string, args: string[]) => {
		const port = await freePort();
		const p = spawn(bin, ['--node-id', id, '--listen', `127.0.0.1:${port}`, '--demo', 'on', '--drain-window', '2s', ...common, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
		p.stdout!.on('data', (d) => logs.push(`[${id}] ${String(d)}`));
		p.stderr!.on('data', (d) => logs.push(`[${id}] ${String(d)}`));
		procs.push(p);
		const base = `http://127.0.0.1:${port}`;
		await waitReady(base, p);
		return { base, p, port };
	};
	const natsPort = await freePort();
	// Gossip (memberlist) tells the survivors that a killed node's sessions are gone.
	const gossip = await Promise.all([freePort(), freePort(), freePort()]);
	const g = (i: number) => ['--gossip-bind', `127.0.0.1:${gossip[i]}`, '--gossip-join', `127.0.0.1:${gossip[0]}`];
	const admin = await run('node-nats', ['--nats-listen', `127.0.0.1:${natsPort}`, '--data-dir', join(dir, 'data'), '--gossip-bind', `127.0.0.1:${gossip[0]}`]);
	const nats = `nats://127.0.0.1:${natsPort}`;
	const [n1, n2] = await Promise.all([run('node-1', ['--nats', nats, ...g(1)]), run('node-2', ['--nats', nats, ...g(2)])]);
	const lb = new LoadBalancer([n1.port, n2.port]);
	await lb.listen();
	const nodes = [n1, n2];
	return {
		urls: [n1.base, n2.base],
		ids: ['node-1', 'node-2'],
		lb: `http://127.0.0.1:${lb.port}`,
		admin: admin.base,
		kill: async (i) => {
			const p = nodes[i]!.p;
			p.kill('SIGKILL');
			await new Promise((r) => (p.exitCode !== null || p.signalCode !== null ? r(null) : p.once('exit', r)));
		},
		drain: async (i) => {
			nodes[i]!.p.kill('SIGTERM');
		},
		connections: (i) => metricsConnections(nodes[i]!.base),
		close: async () => {
			await lb.close();
			for (const p of procs) if (p.exitCode === null && p.signalCode === null) p.kill('SIGTERM');
			await Promise.all(procs.map((p) => (p.exitCode !== null || p.signalCode !== null ? null : new Promise((r) => p.once('exit', r)))));
			if (process.env.E2E_LOGS) appendFileSync(process.env.E2E_LOGS, logs.join(''));
			rmSync(dir, { recursive: true, force: true });
		}
	};
}
