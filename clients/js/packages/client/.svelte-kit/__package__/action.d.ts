/**
 * Calls a SvelteKit form action (or any endpoint) with POST and returns the
 * connection URL it answers with.
 *
 * Accepted answers: SvelteKit's action result `{type: 'success', data}` where
 * `data` is devalue-encoded (what `use()` / a form action returning `{url}`
 * produces when called with `x-sveltekit-action: true`), the same with plain
 * JSON `data`, or plain `{url}` JSON from an endpoint.
 */
export declare function fetchActionUrl(action: string | URL, init?: RequestInit, fetchImpl?: typeof fetch): Promise<string>;
/** Extracts `url` from an action result body; see {@link fetchActionUrl}. */
export declare function urlFromActionBody(body: string): string;
