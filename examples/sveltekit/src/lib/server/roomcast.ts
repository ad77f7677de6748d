import { env } from '$env/dynamic/private';
import { createRoomcast, deny } from '@roomcast/sveltekit/server';

/** Event name → payload, shared with the page. */
export type Events = { message: string };
/** Session meta shown in presence. */
export type Meta = { name: string };

/**
 * One instance per server process. NATS is the node's embedded one on a
 * laptop (`go run ./cmd/node` listens on 127.0.0.1:4222); in production, the
 * NATS your nodes use. Nothing connects before the first use().
 */
export const roomcast = createRoomcast<Events, Meta>({
	nats: env.ROOMCAST_NATS || 'nats://127.0.0.1:4222',
	// How long a minted key may wait for its browser (the e2e test shortens it).
	ttl: env.ROOMCAST_KEY_TTL || '2m'
});

/** A display name → a user id (user ids become NATS subject tokens). */
export function userId(name: string): string {
	return name.toLowerCase().replace(/[^a-z0-9_-]+/g, '-').replace(/^-+|-+$/g, '').slice(0, 64) || 'guest';
}

let started = false;

/** The continuous routes; called once from hooks.server.ts' init. */
export function startRoutes(): void {
	if (started) return;
	started = true;
	// sveltekit-websockets' continuous('/chat') echo, on the node's /chat route
	// (roomcast.yaml: auth: hook). Each session goes to exactly one replica.
	roomcast.continuous(
		'/chat',
		(socket) => {
			socket.send(`Welcome to /chat, ${socket.meta.name}`);
			socket.addEventListener('message', (msg) => socket.send(`Echo: ${msg.data}`));
		},
		{
			// Answers the node's auth hook: the same cookie the pages use.
			guard: (req) => {
				const name = req.cookies.name;
				if (!name) return deny(401, 'pick a name first');
				return { user: userId(name), meta: { name } };
			}
		}
	);
}
