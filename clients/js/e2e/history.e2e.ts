/**
 * History recovery in Chromium against real nodes: a tab in a history room
 * (chat.>) whose node is SIGKILLed while a back-end keeps publishing (POST
 * /_/publish on the NATS node) reconnects through the load balancer to the
 * other node, re-joins with `since`, and ends with every message exactly
 * once, in order.
 *
 * The tab runs @roomcast/client from source (bundled here with esbuild), on
 * a page of the balancer's origin, minting keys with POST /_/demo/key; once
 * with its own socket, once through the SharedWorker (the demo's /worker.js).
 *
 * And two tabs sharing a SharedWorker (its script bundled here from source,
 * from a blob: URL both tabs use): one leaves for the back/forward cache
 * while the other keeps the room, and comes back behind the worker; the
 * worker reads what it missed from the room's history.
 *
 *   npm run e2e
 */
import { build } from 'esbuild';
import { join } from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { startCluster, type Cluster } from './cluster.js';

const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';
const API_KEY = 'e2e-history-key';
const ROOM = 'chat.e2e';
const CONFIG = 'history:\n  - rooms: "chat.>"\n    size: 1000\n    ttl: 10m\n';

let browser: Browser;
let cluster: Cluster;
let bundle: string;
let workerBundle: string;

beforeAll(async () => {
	const out = await build({
		entryPoints: [join(import.meta.dirname, '../packages/client/src/index.ts')],
		bundle: true,
		format: 'iife',
		globalName: 'Roomcast',
		target: 'es2022',
		write: false,
		logLevel: 'warning'
	});
	bundle = out.outputFiles[0]!.text;
	const worker = await build({
		entryPoints: [join(import.meta.dirname, '../packages/client/src/worker.ts')],
		bundle: true,
		format: 'iife',
		target: 'es2022',
		write: false,
		logLevel: 'warning'
	});
	workerBundle = worker.outputFiles[0]!.text;
	browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'] });
});
afterAll(async () => {
	await browser?.close();
});
beforeEach(async () => {
	cluster = await startCluster({ config: CONFIG, apiKey: API_KEY });
});
afterEach(async () => {
	await cluster?.close();
});

/** Publishes {n} for n in [from, to), one after the other (so in order). */
async function publish(from: number, to: number): Promise<void> {
	for (let n = from; n < to; n++) {
		const res = await fetch(`${cluster.admin}/_/publish`, {
			method: 'POST',
			headers: { authorization: `Bearer ${API_KEY}`, 'content-type': 'application/json' },
			body: JSON.stringify({ room: ROOM, event: 'msg', data: { n } })
		});
		if (!res.ok) throw new Error(`publish ${n}: ${res.status} ${await res.text()}`);
	}
}

/** Publishes {n} for n = 0, 1, … one after the other (so in order) every `every` ms until stopped. */
function startPublisher(every: number) {
	let n = 0;
	let stop = false;
	const done = (async () => {
		while (!stop) {
			const t = Date.now();
			const res = await fetch(`${cluster.admin}/_/publish`, {
				method: 'POST',
				headers: { authorization: `Bearer ${API_KEY}`, 'content-type': 'application/json' },
				body: JSON.stringify({ room: ROOM, event: 'msg', data: { n } })
			});
			if (!res.ok) throw new Error(`publish ${n}: ${res.status} ${await res.text()}`);
			n++;
			const wait = every - (Date.now() - t);
			if (wait > 0) await new Promise((r) => setTimeout(r, wait));
		}
	})();
	return {
		get count() {
			return n;
		},
		stop: async () => {
			stop = true;
			await done;
			return n;
		}
	};
}

interface TabState {
	node: string;
	state: string;
	got: Array<[number, number]>;
	recovered: Array<{ room: string; recovered: boolean }>;
}

const tabState = (page: Page) =>
	page.evaluate('({ node: rc.welcome?.node ?? "", state: rc.state, got: window.got, recovered: window.recovered })') as Promise<TabState>;

async function until(what: string, page: Page, ok: (s: TabState) => boolean, timeout = 15_000): Promise<TabState> {
	const end = Date.now() + timeout;
	let s = await tabState(page);
	while (!ok(s) && Date.now() < end) {
		await new Promise((r) => setTimeout(r, 100));
		s = await tabState(page);
	}
	if (!ok(s)) throw new Error(`${what}: node ${s.node}, state ${s.state}, ${s.got.length} events, recovered ${JSON.stringify(s.recovered)}`);
	return s;
}

describe('history recovery in Chromium', () => {
	// shared: the socket lives in the SharedWorker (the demo's /worker.js, built from packages/client/src/worker.ts).
	it.each([{ shared: false }, { shared: true }])('a tab whose node is killed while a back-end publishes gets every message once, in order, on the other node (%o)', async ({ shared }) => {
		const context = await browser.newContext();
		const page = await context.newPage();
		const errors: string[] = [];
		page.on('pageerror', (e) => errors.push(String(e)));
		await page.goto(`${cluster.lb}/readyz`);
		await page.addScriptTag({ content: bundle });
		await page.evaluate(`(async () => {
			window.got = [];
			window.recovered = [];
			window.hold = false;
			window.rc = new Roomcast.RoomcastClient({
				backoff: { base: 100, cap: 500 },
				${shared ? "sharedWorker: () => new SharedWorker('/worker.js', { name: 'roomcast-history' })," : ''}
				mint: async () => {
					while (window.hold) await new Promise((r) => setTimeout(r, 50));
					const res = await fetch('/_/demo/key', { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"user":"hist"}', cache: 'no-store' });
					return (await res.json()).url;
				}
			});
			rc.on('msg', (d, ctx) => window.got.push([d.n, ctx.seq]));
			rc.listen('recovered', (r) => window.recovered.push({ room: r.room, recovered: r.recovered }));
			await rc.join(${JSON.stringify(ROOM)});
		})()`);
		expect(await page.evaluate('rc.shared')).toBe(shared);
		const first = (await tabState(page)).node;
		const dead = cluster.ids.indexOf(first);
		expect(dead).toBeGreaterThanOrEqual(0);
		const other = cluster.ids[1 - dead]!;

		const pub = startPublisher(5); // ~200 msg/s
		try {
			await until('live events', page, (s) => s.got.length >= 100);
			// Kill the node; the tab stays away ~1 s (its mint waits) while the publisher goes on.
			await page.evaluate('window.hold = true');
			await cluster.kill(dead);
			const atKill = pub.count;
			await new Promise((r) => setTimeout(r, 1000));
			await page.evaluate('window.hold = false');
			await until('tab on the other node', page, (s) => s.node === other && s.state === 'open');
			await new Promise((r) => setTimeout(r, 500));
			const missed = pub.count - atKill;
			const total = await pub.stop();
			const s = await until(`all ${total} events`, page, (st) => st.got.length >= total && st.got.at(-1)?.[0] === total - 1);
			await new Promise((r) => setTimeout(r, 200)); // nothing more (repeats) comes after the last one
			const { got, recovered } = await tabState(page);
			const ns = got.map(([n]) => n);
			expect(ns).toEqual(Array.from({ length: total }, (_, i) => i));
			for (let i = 1; i < got.length; i++) expect(got[i]![1]).toBeGreaterThan(got[i - 1]![1]);
			expect(recovered).toEqual([{ room: ROOM, recovered: true }]);
			expect(errors).toEqual([]);
			console.log(`history: ${total} messages, ${missed} published while away, all once and in order on ${s.node}`);
		} finally {
			await pub.stop();
			await context.close();
		}
	});

	it('a tab back from the back/forward cache, behind the SharedWorker that kept the room, gets what it missed once, in order, then live events', async () => {
		const context = await browser.newContext();
		const errors: string[] = [];
		let workerUrl = '';
		const open = async () => {
			const page = await context.newPage();
			page.on('pageerror', (e) => errors.push(String(e)));
			await page.goto(`${cluster.lb}/readyz`);
			await page.addScriptTag({ content: bundle });
			// The worker from source (the node's /worker.js is the demo's committed build): a blob: URL
			// made by the first tab, the same for both so that they share one worker. (A script served
			// through Playwright's request interception gets a worker whose WebSockets fail.)
			workerUrl ||= (await page.evaluate(`URL.createObjectURL(new Blob([${JSON.stringify(workerBundle)}], { type: 'text/javascript' }))`)) as string;
			await page.evaluate(`(async () => {
				window.got = [];
				window.recovered = [];
				window.rc = new Roomcast.RoomcastClient({
					sharedWorker: () => new SharedWorker(${JSON.stringify(workerUrl)}, { name: 'roomcast-catchup' }),
					mint: async () => {
						const res = await fetch('/_/demo/key', { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"user":"hist"}', cache: 'no-store' });
						return (await res.json()).url;
					}
				});
				rc.on('msg', (d, ctx) => window.got.push([d.n, ctx.seq]));
				rc.listen('recovered', (r) => window.recovered.push({ room: r.room, recovered: r.recovered }));
				await rc.join(${JSON.stringify(ROOM)});
			})()`);
			expect(await page.evaluate('rc.shared')).toBe(true);
			return page;
		};
		try {
			const a = await open();
			const b = await open();
			expect((await tabState(b)).node).toBe((await tabState(a)).node); // one socket
			await publish(0, 5);
			await until('the first events in tab b', b, (s) => s.got.length === 5);
			// b goes into the back/forward cache: it says bye, the worker keeps the room for a.
			await b.evaluate(`window.dispatchEvent(new PageTransitionEvent('pagehide', { persisted: true }))`);
			await publish(5, 45);
			await until('a has what b misses', a, (s) => s.got.length === 45);
			// b comes back and re-joins with its own position; more events are published meanwhile.
			await b.evaluate(`window.dispatchEvent(new PageTransitionEvent('pageshow', { persisted: true }))`);
			await publish(45, 65);
			const sb = await until('every event in b', b, (s) => s.got.length >= 65);
			await new Promise((r) => setTimeout(r, 200)); // nothing more (repeats) comes
			const sa = await tabState(a);
			const { got, recovered } = await tabState(b);
			expect(got.map(([n]) => n)).toEqual(Array.from({ length: 65 }, (_, i) => i));
			expect(got).toEqual(sa.got);
			expect(recovered).toEqual([{ room: ROOM, recovered: true }]);
			expect(sa.recovered).toEqual([]);
			expect(errors).toEqual([]);
			console.log(`history: a tab back from the bfcache caught up 40 events through the worker on ${sb.node}`);
		} finally {
			await context.close();
		}
	});
});
