import { parse } from 'devalue';
/**
 * Calls a SvelteKit form action (or any endpoint) with POST and returns the
 * connection URL it answers with.
 *
 * Accepted answers: SvelteKit's action result `{type: 'success', data}` where
 * `data` is devalue-encoded (what `use()` / a form action returning `{url}`
 * produces when called with `x-sveltekit-action: true`), the same with plain
 * JSON `data`, or plain `{url}` JSON from an endpoint.
 */
export async function fetchActionUrl(action, init = {}, fetchImpl = globalThis.fetch) {
    const headers = new Headers(init.headers);
    if (!headers.has('accept'))
        headers.set('accept', 'application/json');
    headers.set('x-sveltekit-action', 'true');
    const res = await fetchImpl(action, {
        ...init,
        method: 'POST',
        headers,
        body: init.body ?? new FormData(),
        cache: init.cache ?? 'no-store'
    });
    if (!res.ok)
        throw new Error(`POST ${String(action)}: ${res.status} ${res.statusText}`);
    return urlFromActionBody(await res.text());
}
/** Extracts `url` from an action result body; see {@link fetchActionUrl}. */
export function urlFromActionBody(body) {
    const json = JSON.parse(body);
    if (typeof json.url === 'string')
        return json.url;
    if ('type' in json) {
        if (json.type !== 'success') {
            const detail = json.type === 'redirect' ? ` to ${String(json.location)}` : '';
            throw new Error(`action answered "${String(json.type)}"${detail}, not success`);
        }
        let data = json.data;
        if (typeof data === 'string') {
            const raw = data;
            try {
                data = parse(raw);
            }
            catch {
                data = JSON.parse(raw);
            }
        }
        const url = data?.url;
        if (typeof url === 'string' && url !== '')
            return url;
    }
    throw new Error('action answered without a url');
}
