import type { Meta } from '@roomcast/client';
import type { AuthRequestBody } from './events.js';

/**
 * The upgrade request a node forwards on `rc.auth.connect` for an
 * `auth: hook` route, in web terms.
 */
export interface GuardRequest {
	/** The route path, e.g. "/chat". */
	path: string;
	/** Path and query on the page's origin (or http://roomcast.invalid without an Origin). */
	url: URL;
	query: URLSearchParams;
	/** The Origin header ("" when absent: not a browser). */
	origin: string;
	/** Authorization, User-Agent, X-Forwarded-For, X-Real-Ip, Accept-Language, Origin, Cookie when present. */
	headers: Headers;
	/** Cookies by name. */
	cookies: Record<string, string>;
	/**
	 * The client's IP. Behind a load balancer, start the nodes with
	 * `--trusted-proxies` naming it; otherwise this is the balancer's. Do not
	 * trust the raw X-Forwarded-For header: its first entries are the client's to forge.
	 */
	ip: string;
	/** The TCP peer's host:port, or the client's IP from a trusted proxy's X-Forwarded-For. */
	remote: string;
	/** The node asking. */
	node: string;
	/** The raw request. */
	raw: AuthRequestBody;
}

/** What a guard may attach to the session it lets in. */
export interface GuardGrant<M = Meta> {
	user?: string;
	meta?: M;
	/** Rooms joined on connect (besides the route's). */
	rooms?: string[];
	/** Room patterns the session may join and publish to (besides the route's). */
	allow?: string[];
	/** A session id of your choosing (1–128 chars of [A-Za-z0-9_-:@=], no dots). */
	session?: string;
}

const DENIAL = Symbol('roomcast.denial');

/** A refusal: the upgrade gets HTTP `code` with `reason`. Build it with {@link deny}. */
export interface GuardDenial {
	readonly [DENIAL]: true;
	readonly code: 401 | 403;
	readonly reason: string;
}

/**
 * A guard decides whether a browser may connect on a continuous route:
 * `true` or nothing lets it in as the route says, a {@link GuardGrant} lets it
 * in with that user/meta/rooms, `false` refuses with 403, `deny(401, 'sign in')`
 * refuses with that code. A guard that throws leaves the node without an
 * answer: the browser gets 503 after 3 s (and retries).
 */
export type Guard<M = Meta> = (req: GuardRequest) => GuardResult<M> | Promise<GuardResult<M>>;
export type GuardResult<M = Meta> = boolean | void | undefined | null | GuardGrant<M> | GuardDenial;

/** Refuses an upgrade: 401 (not signed in) or 403 (not allowed). */
export function deny(code: 401 | 403 = 403, reason = code === 401 ? 'unauthorized' : 'forbidden'): GuardDenial {
	return { [DENIAL]: true, code, reason };
}

export function isDenial(v: unknown): v is GuardDenial {
	return typeof v === 'object' && v !== null && (v as Record<symbol, unknown>)[DENIAL] === true;
}

export function parseCookies(header: string | undefined): Record<string, string> {
	const out: Record<string, string> = {};
	if (!header) return out;
	for (const part of header.split(';')) {
		const i = part.indexOf('=');
		if (i <= 0) continue;
		const name = part.slice(0, i).trim();
		let value = part.slice(i + 1).trim();
		if (value.startsWith('"') && value.endsWith('"') && value.length >= 2) value = value.slice(1, -1);
		try {
			value = decodeURIComponent(value);
		} catch {
			// keep it raw
		}
		if (!(name in out)) out[name] = value;
	}
	return out;
}

/** "1.2.3.4:5678" → "1.2.3.4"; "[::1]:5678" → "::1". */
export function hostOf(remote: string): string {
	const m = /^\[([^\]]+)\](?::\d+)?$/.exec(remote);
	if (m) return m[1]!;
	const i = remote.lastIndexOf(':');
	return i > 0 && remote.indexOf(':') === i ? remote.slice(0, i) : remote;
}

export function guardRequest(body: AuthRequestBody): GuardRequest {
	const headers = new Headers();
	for (const [k, v] of Object.entries(body.headers ?? {})) {
		try {
			headers.set(k, v);
		} catch {
			// an invalid header value: skip it
		}
	}
	if (body.origin) headers.set('origin', body.origin);
	if (body.cookies) headers.set('cookie', body.cookies);
	const query = body.query ?? '';
	let url: URL;
	try {
		url = new URL(`${body.path}${query ? `?${query}` : ''}`, body.origin || 'http://roomcast.invalid');
	} catch {
		url = new URL('http://roomcast.invalid/');
	}
	return {
		path: body.path,
		url,
		query: new URLSearchParams(query),
		origin: body.origin ?? '',
		headers,
		cookies: parseCookies(body.cookies),
		ip: hostOf(body.remote ?? ''),
		remote: body.remote ?? '',
		node: body.node ?? '',
		raw: body
	};
}

/** The answer to rc.auth.connect for a guard's result. */
export function guardAnswer<M>(result: GuardResult<M>): Record<string, unknown> {
	if (isDenial(result)) return { deny: true, code: result.code, reason: result.reason };
	if (result === false) return { deny: true, code: 403, reason: 'forbidden' };
	if (result === true || result === undefined || result === null) return { allow: true };
	const a: Record<string, unknown> = { allow: true };
	if (result.user !== undefined) a.user = result.user;
	if (result.meta !== undefined) a.meta = result.meta;
	if (result.session !== undefined) a.session = result.session;
	if (result.rooms !== undefined) a.rooms = result.rooms;
	if (result.allow !== undefined) a.allow_rooms = result.allow;
	return a;
}
