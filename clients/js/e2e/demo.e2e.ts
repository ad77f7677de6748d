/**
 * Browser end-to-end tests of the demo page and the client in Debian's
 * Chromium (playwright-core, never a downloaded browser): chat and presence
 * across two nodes, reconnect to another node when one dies, two tabs on one
 * SharedWorker socket, a direct socket when the worker script is missing,
 * the /_/demo/ws fallback. They run against real roomcast-node processes
 * (see cluster.ts). Screenshots of failing pages go to e2e/screenshots/ at
 * the repository root.
 *
 *   npm run e2e
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { repoRoot, startCluster, type Cluster } from './cluster.js';

const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';
const shots = join(repoRoot, 'e2e/screenshots');

let browser: Browser;
let cluster: Cluster;
let contexts: BrowserContext[] = [];
let pages: Array<{ page: Page; name: string; errors: string[] }> = [];

beforeAll(async () => {
	browser = await chromium.launch({
		executablePath: CHROMIUM,
		args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking']
	});
});
afterAll(async () => {
	await browser?.close();
});
beforeEach(async () => {
	cluster = await startCluster();
	contexts = [];
	pages = [];
});
afterEach(async (ctx) => {
	if (ctx.task.result?.state === 'fail') {
		mkdirSync(shots, { recursive: true });
		for (const { page, name, errors } of pages) {
			if (page.isClosed()) continue;
			const file = join(shots, `${ctx.task.name.replace(/\W+/g, '-')}-${name}.png`);
			await page.screenshot({ path: file }).catch(() => {});
			console.log(`screenshot: ${file}${errors.length ? `; page errors: ${errors.join('; ')}` : ''}`);
		}
	}
	await Promise.all(contexts.map((c) => c.close()));
	await cluster.close();
});

async function context(): Promise<BrowserContext> {
	const c = await browser.newContext({ viewport: { width: 900, height: 600 } });
	contexts.push(c);
	return c;
}

/** Opens the demo page, joined to `room` as `name`, and waits until it is open and lists itself. */
async function openDemo(
	ctx: BrowserContext,
	base: string,
	name: string,
	opts: { room?: string; shared?: boolean; setup?: (page: Page) => Promise<unknown> } = {}
): Promise<Page> {
	const page = await ctx.newPage();
	const errors: string[] = [];
	page.on('pageerror', (e) => errors.push(String(e)));
	pages.push({ page, name, errors });
	await opts.setup?.(page);
	const q = new URLSearchParams({ name, room: opts.room ?? 'lobby', autojoin: '' });
	if (opts.shared) q.set('shared', '1');
	await page.goto(`${base}/?${q}`);
	await page.waitForSelector('#status.open', { timeout: 10_000 });
	await expectPeople(page, [name], { subset: true });
	return page;
}

async function people(page: Page): Promise<string[]> {
	return page.$$eval('#people li', (lis) => lis.map((li) => li.firstChild?.textContent ?? ''));
}

/** Polls the online list until it holds `names` (exactly, or as a subset). */
async function expectPeople(page: Page, names: string[], o: { subset?: boolean; timeout?: number } = {}): Promise<void> {
	const end = Date.now() + (o.timeout ?? 10_000);
	let got: string[] = [];
	while (Date.now() < end) {
		got = await people(page);
		const ok = o.subset ? names.every((n) => got.includes(n)) : [...got].sort().join() === [...names].sort().join();
		if (ok) return;
		await page.waitForTimeout(50);
	}
	throw new Error(`online list is [${got}], want ${o.subset ? 'at least ' : ''}[${names}]`);
}

async function say(page: Page, text: string): Promise<void> {
	await page.fill('#text', text);
	await page.press('#text', 'Enter');
}

async function waitLog(page: Page, text: string, timeout = 10_000): Promise<void> {
	await page.waitForFunction((t) => [...document.querySelectorAll('#log li')].some((li) => li.textContent?.includes(t)), text, { timeout });
}

const nodeOf = (page: Page) => page.$eval('#node', (el) => /node (\S+)/.exec(el.textContent ?? '')?.[1] ?? '');
const sessionOf = (page: Page) => page.$eval('#node', (el) => /session (\S+)/.exec(el.textContent ?? '')?.[1] ?? '');

async function eventually<T>(what: string, f: () => Promise<T>, ok: (v: T) => boolean, timeout = 10_000): Promise<T> {
	const end = Date.now() + timeout;
	let v = await f();
	while (!ok(v) && Date.now() < end) {
		await new Promise((r) => setTimeout(r, 50));
		v = await f();
	}
	if (!ok(v)) throw new Error(`${what}: last value ${JSON.stringify(v)}`);
	return v;
}

describe('demo page in Chromium', () => {
	it('chats and lists presence across two nodes', async () => {
		const alice = await openDemo(await context(), cluster.urls[0], 'alice');
		const bob = await openDemo(await context(), cluster.urls[1], 'bob');
		expect(await nodeOf(alice)).toBe(cluster.ids[0]);
		expect(await nodeOf(bob)).toBe(cluster.ids[1]);
		await expectPeople(alice, ['alice', 'bob']);
		await expectPeople(bob, ['alice', 'bob']);
		expect(await alice.textContent('#count')).toBe('2');

		await say(alice, 'hello from node A');
		await waitLog(bob, 'hello from node A');
		await say(bob, 'hi back from node B');
		await waitLog(alice, 'hi back from node B');

		await bob.close();
		await expectPeople(alice, ['alice']);
	});

	it('reconnects to the other node when its node dies, and re-lists presence', async () => {
		const carol = await openDemo(await context(), cluster.lb, 'carol');
		const first = await nodeOf(carol);
		const dead = cluster.ids.indexOf(first);
		expect(dead).toBeGreaterThanOrEqual(0);
		const other = 1 - dead;
		const watcher = await openDemo(await context(), cluster.urls[other]!, 'watcher');
		await expectPeople(watcher, ['carol', 'watcher']);

		const t0 = Date.now();
		await cluster.kill(dead);
		await eventually('carol moves to the other node', () => nodeOf(carol), (n) => n === cluster.ids[other]);
		const took = Date.now() - t0;
		await expectPeople(carol, ['carol', 'watcher']);
		await expectPeople(watcher, ['carol', 'watcher']);
		await say(carol, 'back online');
		await waitLog(watcher, 'back online');
		console.log(`reconnected to ${cluster.ids[other]} in ${took} ms`);
	});

	it('moves to the other node at once when its node drains (1001)', async () => {
		const carol = await openDemo(await context(), cluster.lb, 'carol');
		const first = cluster.ids.indexOf(await nodeOf(carol));
		const other = 1 - first;
		const watcher = await openDemo(await context(), cluster.urls[other]!, 'watcher');
		await expectPeople(watcher, ['carol', 'watcher']);
		const t0 = Date.now();
		await cluster.drain(first);
		await eventually('carol moves to the other node', () => nodeOf(carol), (n) => n === cluster.ids[other], 15_000);
		console.log(`drained: on ${cluster.ids[other]} after ${Date.now() - t0} ms`);
		await expectPeople(carol, ['carol', 'watcher']);
		await expectPeople(watcher, ['carol', 'watcher']);
		const log = await carol.$$eval('#log li', (lis) => lis.map((li) => li.textContent ?? ''));
		expect(log.some((l) => l.includes('(1001'))).toBe(true);
	});

	it('shares one socket between two tabs through the SharedWorker', async () => {
		const before = await cluster.connections(0);
		const ctx = await context();
		const tab1 = await openDemo(ctx, cluster.urls[0], 'dave', { shared: true });
		const tab2 = await openDemo(ctx, cluster.urls[0], 'dave', { shared: true });
		expect(await tab1.textContent('#node')).toContain('shared');
		expect(await sessionOf(tab1)).toBe(await sessionOf(tab2));
		await eventually('one socket for two tabs', () => cluster.connections(0), (n) => n === before + 1);

		const erin = await openDemo(await context(), cluster.urls[1], 'erin');
		await expectPeople(erin, ['dave', 'erin']);
		await say(erin, 'to both tabs');
		await waitLog(tab1, 'to both tabs');
		await waitLog(tab2, 'to both tabs');

		// Closing one tab keeps the room (the other tab holds it); closing both ends the session.
		await tab1.close({ runBeforeUnload: true });
		await new Promise((r) => setTimeout(r, 500));
		await expectPeople(erin, ['dave', 'erin']);
		await tab2.close({ runBeforeUnload: true });
		await expectPeople(erin, ['erin']);
		await eventually('socket closed with the last tab', () => cluster.connections(0), (n) => n === before);
	});

	it('uses a direct socket when the SharedWorker script fails to load', async () => {
		const before = await cluster.connections(0);
		const gina = await openDemo(await context(), cluster.urls[0], 'gina', {
			shared: true,
			setup: (page) => page.route('**/worker.js', (route) => route.fulfill({ status: 404, body: 'gone' }))
		});
		expect(await gina.textContent('#node')).not.toContain('shared');
		await eventually('one direct socket', () => cluster.connections(0), (n) => n === before + 1);
		await say(gina, 'without the worker');
		await waitLog(gina, 'without the worker');
	});

	it('falls back to /_/demo/ws when /_/demo/key is missing', async () => {
		let routeUsed = false;
		const frank = await openDemo(await context(), cluster.urls[0], 'frank', {
			setup: async (page) => {
				await page.route('**/_/demo/key', (route) => route.fulfill({ status: 404, body: '404 page not found' }));
				page.on('websocket', (ws) => {
					if (new URL(ws.url()).pathname === '/_/demo/ws') routeUsed = true;
				});
			}
		});
		expect(routeUsed).toBe(true);
		await say(frank, 'via the public route');
		await waitLog(frank, 'via the public route');
	});
});
