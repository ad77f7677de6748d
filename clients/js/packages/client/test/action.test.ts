import { stringify } from 'devalue';
import { describe, expect, it } from 'vitest';
import { fetchActionUrl, urlFromActionBody } from '../src/action.js';

describe('urlFromActionBody', () => {
	it('reads a SvelteKit action result with devalue data', () => {
		const body = JSON.stringify({ type: 'success', status: 200, data: stringify({ url: '/_/connect/abc' }) });
		expect(urlFromActionBody(body)).toBe('/_/connect/abc');
	});
	it('reads plain JSON data and plain {url}', () => {
		expect(urlFromActionBody(JSON.stringify({ type: 'success', data: JSON.stringify({ url: 'ws://x/y' }) }))).toBe('ws://x/y');
		expect(urlFromActionBody(JSON.stringify({ type: 'success', data: { url: 'ws://x/z' } }))).toBe('ws://x/z');
		expect(urlFromActionBody(JSON.stringify({ url: '/_/connect/k' }))).toBe('/_/connect/k');
	});
	it('fails on failure, redirect and missing url', () => {
		expect(() => urlFromActionBody(JSON.stringify({ type: 'failure', status: 400, data: stringify({}) }))).toThrow(/failure/);
		expect(() => urlFromActionBody(JSON.stringify({ type: 'redirect', location: '/login' }))).toThrow(/"redirect" to \/login/);
		expect(() => urlFromActionBody(JSON.stringify({ type: 'success', data: stringify({}) }))).toThrow(/without a url/);
	});
});

describe('fetchActionUrl', () => {
	it('POSTs as a SvelteKit action and returns the url', async () => {
		let seen: RequestInit | undefined;
		const fake = (async (_url: string, init: RequestInit) => {
			seen = init;
			return new Response(JSON.stringify({ type: 'success', status: 200, data: stringify({ url: '/_/connect/k1' }) }));
		}) as unknown as typeof fetch;
		await expect(fetchActionUrl('?/ws', {}, fake)).resolves.toBe('/_/connect/k1');
		expect(seen?.method).toBe('POST');
		expect(new Headers(seen?.headers).get('x-sveltekit-action')).toBe('true');
	});
	it('rejects on HTTP errors', async () => {
		const fake = (async () => new Response('no', { status: 404, statusText: 'Not Found' })) as unknown as typeof fetch;
		await expect(fetchActionUrl('/x', {}, fake)).rejects.toThrow(/404/);
	});
});
