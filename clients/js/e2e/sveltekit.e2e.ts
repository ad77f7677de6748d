/**
 * The SvelteKit example in Chromium, end to end: a real roomcast-node (with
 * examples/sveltekit/roomcast.yaml) and the example's `vite dev` server, the
 * browser going through @roomcast/sveltekit's Vite plugin. Submits the name
 * form, sees `Connected!` from the use() handler, sends a message the handler
 * logs and answers, sees presence across two users, uses the continuous('/chat')
 * echo route, and checks that a key never redeemed gets its handler closed
 * (4001) after its TTL.
 *
 * Needs `npm ci` (or `npm install`) in examples/sveltekit and `npm run build`
 * here first (the example links the built packages).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { freePort, repoRoot } from './cluster.js';
import { startNode, type TestNode } from './node.js';

const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';
const example = join(repoRoot, 'examples/sveltekit');
const shots = join(repoRoot, 'e2e/screenshots');
const TTL_S = 3;

let browser: Browser;
let node: TestNode;
let dev: ChildProcess;
let devLog = '';
let base = '';
const contexts: BrowserContext[] = [];
const pages: Array<{ page: Page; name: string }> = [];

function need(path: string, hint: string): void {
	if (!existsSync(path)) throw new Error(`${path} is missing: ${hint}`);
}

async function startDev(port: number): Promise<void> {
	dev = spawn(join(example, 'node_modules/.bin/vite'), ['dev', '--port', String(port), '--strictPort', '--host', '127.0.0.1'], {
		cwd: example,
		env: { ...process.env, ROOMCAST_URL: node.http, ROOMCAST_NATS: node.nats, ROOMCAST_KEY_TTL: `${TTL_S}s`, NODE_ENV: 'development' },
		stdio: ['ignore', 'pipe', 'pipe']
	});
	dev.stdout!.on('data', (d) => (devLog += String(d)));
	dev.stderr!.on('data', (d) => (devLog += String(d)));
	const end = Date.now() + 60_000;
	while (Date.now() < end) {
		if (dev.exitCode !== null) throw new Error(`vite dev exited with ${dev.exitCode}:\n${devLog}`);
		try {
			if ((await fetch(`${base}/`)).ok) return;
		} catch {
			// not listening yet
		}
		await new Promise((r) => setTimeout(r, 200));
	}
	throw new Error(`vite dev not ready within 60 s:\n${devLog}`);
}

async function until(what: string, f: () => boolean | Promise<boolean>, timeout = 10_000): Promise<void> {
	const end = Date.now() + timeout;
	while (!(await f())) {
		if (Date.now() > end) throw new Error(`${what}: not within ${timeout} ms`);
		await new Promise((r) => setTimeout(r, 50));
	}
}

beforeAll(async () => {
	need(join(example, 'node_modules/.bin/vite'), 'run npm ci in examples/sveltekit');
	need(join(import.meta.dirname, '../packages/sveltekit/dist/server/index.js'), 'run npm run build in clients/js');
	need(join(import.meta.dirname, '../packages/client/dist/svelte/index.js'), 'run npm run build in clients/js');
	node = await startNode({ args: ['--config', join(example, 'roomcast.yaml')] });
	const port = await freePort();
	base = `http://127.0.0.1:${port}`;
	await startDev(port);
	browser = await chromium.launch({
		executablePath: CHROMIUM,
		args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking']
	});
	// Warm-up: the first page load makes Vite optimize dependencies and reload
	// the page; let that happen before the tests click anything.
	const warm = await browser.newPage();
	await warm.goto(`${base}/`);
	await warm.waitForLoadState('networkidle');
	await warm.waitForTimeout(1_000);
	await warm.close();
});

afterEach(async (ctx) => {
	if (ctx.task.result?.state === 'fail') {
		mkdirSync(shots, { recursive: true });
		for (const { page, name } of pages) {
			if (page.isClosed()) continue;
			const file = join(shots, `sveltekit-${ctx.task.name.replace(/\W+/g, '-')}-${name}.png`);
			await page.screenshot({ path: file }).catch(() => {});
			console.log(`screenshot: ${file}`);
		}
		console.log(`vite dev log:\n${devLog}\nnode log:\n${node.logs().slice(-4000)}`);
	}
});

afterAll(async () => {
	await Promise.all(contexts.map((c) => c.close()));
	await browser?.close();
	if (dev && dev.exitCode === null) {
		dev.kill('SIGTERM');
		await new Promise((r) => dev.once('exit', r));
	}
	await node?.stop();
});

/** A signed-in page: opens the example and submits the name form. */
async function signIn(name: string): Promise<Page> {
	const ctx = await browser.newContext({ viewport: { width: 900, height: 800 } });
	contexts.push(ctx);
	const page = await ctx.newPage();
	pages.push({ page, name });
	page.on('pageerror', (e) => console.log(`[${name}] page error: ${String(e)}`));
	await page.goto(`${base}/`);
	await page.waitForLoadState('networkidle');
	await page.fill('#login input[name=name]', name);
	await page.click('#login button');
	await page.waitForSelector('#state', { timeout: 15_000 });
	await until(`${name}'s socket opens`, async () => (await page.textContent('#state')) === 'open', 20_000);
	return page;
}

const texts = (page: Page, sel: string) => page.$$eval(sel, (els) => els.map((e) => e.textContent?.trim() ?? ''));

async function waitText(page: Page, sel: string, text: string, timeout = 10_000): Promise<void> {
	await until(`"${text}" in ${sel}`, async () => (await texts(page, sel)).some((t) => t.includes(text)), timeout);
}

describe('SvelteKit example in Chromium', () => {
	it('submits the form, sees Connected!, and talks to the use() handler', async () => {
		const ada = await signIn('Ada');
		// Sent by the handler while the key was not redeemed yet, delivered on open.
		await waitText(ada, '#use .msg', 'Connected!');
		await ada.fill('#send input', 'hello from chromium');
		await ada.click('#send button');
		await waitText(ada, '#use .msg', 'You said: hello from chromium');
		await until('the handler logged the message', () => devLog.includes('Client says: hello from chromium'));
		// The answer came after Connected!, in order.
		const msgs = await texts(ada, '#use .msg');
		expect(msgs.findIndex((m) => m.includes('Connected!'))).toBeLessThan(msgs.findIndex((m) => m.includes('You said:')));
	});

	it('lists who is online across two users', async () => {
		const [ada, bob] = [pages.find((p) => p.name === 'Ada')?.page ?? (await signIn('Ada')), await signIn('Bob')];
		await waitText(bob, '.presence li', 'Ada');
		await waitText(ada, '.presence li', 'Bob');
		await bob.context().close();
		await until('Bob left', async () => !(await texts(ada, '.presence li')).includes('Bob'));
	});

	it('echoes on the continuous /chat route through the guard', async () => {
		const ada = pages.find((p) => p.name === 'Ada')!.page;
		await until('echo socket open', async () => !(await ada.isDisabled('#echo button')));
		await waitText(ada, '#chat .echo', 'Welcome to /chat, Ada');
		await ada.fill('#echo input', 'ping');
		await ada.click('#echo button');
		await waitText(ada, '#chat .echo', 'Echo: ping');
	});

	it('hands out URLs on /api/websocket to signed-in users only', async () => {
		const ada = pages.find((p) => p.name === 'Ada')!.page;
		const signedIn = await ada.evaluate(async () => {
			const r = await fetch('/api/websocket');
			return { status: r.status, body: (await r.json()) as { url?: string } };
		});
		expect(signedIn.status).toBe(200);
		expect(signedIn.body.url).toMatch(/^\/_\/connect\//);
		const anon = await fetch(`${base}/api/websocket`);
		expect(anon.status).toBe(401);
	});

	it("closes an unredeemed key's handler with 4001 after its TTL", async () => {
		const ada = pages.find((p) => p.name === 'Ada')!.page;
		const before = devLog.split('closed (4001').length;
		const t0 = Date.now();
		// The form action, as the component calls it, without ever connecting.
		const url = await ada.evaluate(async () => {
			const r = await fetch('?/ws', { method: 'POST', body: new FormData(), headers: { 'x-sveltekit-action': 'true' } });
			return (await r.json()) as { type: string };
		});
		expect(url.type).toBe('success');
		await until('4001 logged', () => devLog.split('closed (4001').length > before, (TTL_S + 6) * 1000);
		const took = Date.now() - t0;
		expect(took).toBeGreaterThanOrEqual(TTL_S * 1000);
		console.log(`unredeemed key closed after ${took} ms (ttl ${TTL_S} s + grace)`);
	});
});
