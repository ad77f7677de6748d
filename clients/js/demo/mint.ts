/**
 * The demo's connection URL source: a fresh one-time key from
 * POST /_/demo/key for each attempt, or the public continuous route
 * /_/demo/ws when the node offers no key endpoint (404).
 */
export function demoMint(user: () => string, fetchImpl: typeof fetch = (...a) => globalThis.fetch(...a)): () => Promise<string> {
	let keyless = false;
	return async () => {
		if (keyless) return '/_/demo/ws';
		const res = await fetchImpl('/_/demo/key', {
			method: 'POST',
			headers: { 'content-type': 'application/json' },
			body: JSON.stringify({ user: user() }),
			cache: 'no-store'
		});
		if (res.status === 404 || res.status === 405) {
			keyless = true;
			return '/_/demo/ws';
		}
		if (!res.ok) throw new Error(`POST /_/demo/key: ${res.status}`);
		const body = (await res.json()) as { url?: unknown };
		if (typeof body.url !== 'string') throw new Error('POST /_/demo/key: no url in the answer');
		return body.url;
	};
}
