import type { Handle, RequestEvent, ServerInit } from '@sveltejs/kit';
import { sequence } from '@sveltejs/kit/hooks';
import { createRoomcastHandle } from '@roomcast/sveltekit/server';
import { roomcast, startRoutes, userId } from '$lib/server/roomcast';

export const init: ServerInit = () => {
	startRoutes();
};

/** The example's "auth": a name in a cookie. */
const users: Handle = ({ event, resolve }) => {
	const name = event.cookies.get('name');
	if (name) event.locals.user = { id: userId(name), name };
	return resolve(event);
};

/**
 * delightstack's flow: GET /api/websocket answers {url} for the signed-in
 * user (401 otherwise), so any page connects with one fetch.
 */
const sockets = createRoomcastHandle({
	roomcast,
	path: '/api/websocket',
	authorize: (event: RequestEvent) => (event.locals.user ? { meta: { name: event.locals.user.name }, rooms: ['lobby'] } : false)
});

export const handle = sequence(users, sockets);
