import { fail, redirect } from '@sveltejs/kit';
import { roomcast } from '$lib/server/roomcast';
import type { Actions, PageServerLoad } from './$types';

export const load: PageServerLoad = ({ locals }) => ({ user: locals.user ?? null });

export const actions = {
	login: async ({ request, cookies, url }) => {
		const name = String((await request.formData()).get('name') ?? '').trim().slice(0, 40);
		if (!name) return fail(400, { missing: true });
		cookies.set('name', name, { path: '/', httpOnly: true, sameSite: 'lax', secure: url.protocol === 'https:' });
		// Load again with the cookie (hooks read it before the action ran).
		redirect(303, '/');
	},

	logout: ({ cookies }) => {
		cookies.delete('name', { path: '/' });
		redirect(303, '/');
	},

	// The seed's form action, unchanged in shape: a one-time key for a socket
	// whose handler runs here, while the socket itself lives on a roomcast node.
	ws: (event) =>
		roomcast.use(
			event,
			(socket) => {
				socket.send('Connected!');
				socket.addEventListener('message', (msg) => {
					console.log('Client says:', msg.data);
					socket.send(`You said: ${msg.data}`);
				});
				socket.addEventListener('close', (e) => {
					console.log(`roomcast: session ${socket.id} closed (${e.code}${e.reason ? `: ${e.reason}` : ''})`);
				});
			},
			// The user comes from event.locals.user.id; meta and rooms are the key's claims.
			{ meta: { name: event.locals.user?.name ?? 'guest' }, rooms: ['lobby'] }
		)
} satisfies Actions;
