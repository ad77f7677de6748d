import { describe, expect, it } from 'vitest';
import { demoMint } from './mint.js';

describe('demoMint', () => {
	it('POSTs the user and returns the minted url each time', async () => {
		const bodies: string[] = [];
		let n = 0;
		const mint = demoMint(
			() => 'ada',
			(async (_u: string, init: RequestInit) => {
				bodies.push(String(init.body));
				return new Response(JSON.stringify({ url: `/_/connect/k${++n}` }));
			}) as unknown as typeof fetch
		);
		expect(await mint()).toBe('/_/connect/k1');
		expect(await mint()).toBe('/_/connect/k2');
		expect(bodies).toEqual(['{"user":"ada"}', '{"user":"ada"}']);
	});

	it('falls back to the public route on 404, and stays there', async () => {
		let calls = 0;
		const mint = demoMint(
			() => 'x',
			(async () => {
				calls++;
				return new Response('not found', { status: 404 });
			}) as unknown as typeof fetch
		);
		expect(await mint()).toBe('/_/demo/ws');
		expect(await mint()).toBe('/_/demo/ws');
		expect(calls).toBe(1);
	});

	it('throws on other errors so that the client backs off and retries', async () => {
		const mint = demoMint(() => 'x', (async () => new Response('', { status: 503 })) as unknown as typeof fetch);
		await expect(mint()).rejects.toThrow(/503/);
	});
});
