import { sveltekit } from '@sveltejs/kit/vite';
import { roomcast } from '@roomcast/sveltekit/vite';
import { defineConfig } from 'vite';

export default defineConfig({
	plugins: [
		sveltekit(),
		// /_/connect/* and the continuous route /chat go to the node at ROOMCAST_URL
		// (default http://127.0.0.1:8080), WebSocket upgrades included.
		roomcast({ paths: ['/chat'] })
	],
	// The packages are linked from ../../clients/js: one copy of svelte, and
	// let Vite serve their files.
	resolve: { dedupe: ['svelte'] },
	server: { fs: { allow: ['../../clients/js/packages'] } }
});
