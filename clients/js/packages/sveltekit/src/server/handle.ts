import type { EventMap, Meta } from '@roomcast/client';
import { userFromLocals, type Roomcast, type SocketHandler, type UseOptions } from './roomcast.js';
import { RoomcastServerError } from './socket.js';

/** The parts of SvelteKit's RequestEvent the handle reads. */
export interface HandleEventLike {
	url: URL;
	request: Request;
	locals: unknown;
}

/** The input of SvelteKit's `Handle`. */
export interface HandleInput<Ev> {
	event: Ev;
	resolve(event: Ev, opts?: never): Response | Promise<Response>;
}

/** SvelteKit's `Handle`, structurally (no import of @sveltejs/kit needed). */
export type HandleLike<Ev extends HandleEventLike = HandleEventLike> = (input: HandleInput<Ev>) => Response | Promise<Response>;

export interface RoomcastHandleOptions<E extends EventMap, M, Ev extends HandleEventLike> {
	/** The instance minting the keys. */
	roomcast: Roomcast<E, M>;
	/** Where the page fetches its URL. Default "/api/websocket". */
	path?: string;
	/**
	 * Who may connect, and as whom: return the key's claims (`user`, `meta`,
	 * `rooms`, `allow`, `ttl`), `true` for the defaults, or `false`/`null` for
	 * 401. Default: signed in when `event.locals.user` is set (a string or
	 * an object with `id`), the user id taken from it.
	 */
	authorize?: (event: Ev) => UseOptions<M> | boolean | null | undefined | Promise<UseOptions<M> | boolean | null | undefined>;
	/** A {@link Roomcast.use} handler for each minted session; without it the key is minted with no TypeScript owner. */
	handler?: SocketHandler<E, M>;
}

function jsonResponse(status: number, body: unknown, extra: Record<string, string> = {}): Response {
	return new Response(JSON.stringify(body), {
		status,
		headers: { 'content-type': 'application/json', 'cache-control': 'no-store', ...extra }
	});
}

/**
 * A SvelteKit `handle` that answers `GET` or `POST` on `path` with a freshly
 * minted `{ url }` for the signed-in user, or 401: a page connects with one
 * `fetch` and no proxy (delightstack's flow). Chain it with `sequence()`
 * after the hook that sets `event.locals.user`.
 *
 * ```ts
 * export const handle = sequence(auth, createRoomcastHandle({ roomcast }));
 * // in the page: new RoomcastClient({ mint: async () => (await (await fetch('/api/websocket')).json()).url })
 * ```
 */
export function createRoomcastHandle<E extends EventMap = EventMap, M = Meta, Ev extends HandleEventLike = HandleEventLike>(
	options: RoomcastHandleOptions<E, M, Ev>
): HandleLike<Ev> {
	const path = options.path ?? '/api/websocket';
	const authorize =
		options.authorize ??
		((event: Ev) => {
			const user = userFromLocals(event.locals);
			return user === undefined ? false : { user };
		});
	return async ({ event, resolve }) => {
		if (event.url.pathname !== path) return resolve(event);
		const method = event.request.method;
		if (method !== 'GET' && method !== 'POST') {
			return jsonResponse(405, { error: { code: 'method_not_allowed', message: `use GET or POST on ${path}` } }, { allow: 'GET, POST' });
		}
		const claims = await authorize(event);
		if (!claims) return jsonResponse(401, { error: { code: 'unauthorized', message: 'sign in first' } });
		const opts: UseOptions<M> = claims === true ? {} : claims;
		if (opts.user === undefined && claims === true) {
			const user = userFromLocals(event.locals);
			if (user !== undefined) opts.user = user;
		}
		try {
			if (options.handler) return jsonResponse(200, await options.roomcast.use(event, options.handler, opts));
			const minted = await options.roomcast.mint(opts);
			return jsonResponse(200, { url: minted.url });
		} catch (err) {
			const e = err as RoomcastServerError;
			const status = e.code === 'bad_request' ? 400 : 503;
			return jsonResponse(status, { error: { code: e.code ?? 'unavailable', message: e.message } }, status === 503 ? { 'retry-after': '2' } : {});
		}
	};
}
