import { svelte } from '@sveltejs/vite-plugin-svelte';
import { configDefaults, defineConfig } from 'vitest/config';

export default defineConfig({
	test: {
		pool: 'threads',
		maxWorkers: 2,
		projects: [
			{
				// Compiles .svelte and .svelte.ts (runes) in tests; the browser build of svelte so effects run.
				plugins: [svelte({ configFile: false, compilerOptions: { runes: true } })],
				resolve: { conditions: ['browser'] },
				test: {
					name: 'client',
					include: ['packages/client/test/**/*.test.ts', 'demo/**/*.test.ts'],
					exclude: [...configDefaults.exclude, 'packages/client/test/node/**'],
					environment: 'node'
				}
			},
			{
				// The client (SharedWorker hub, tabs) against a real roomcast-node and its embedded NATS.
				test: {
					name: 'client-node',
					include: ['packages/client/test/node/**/*.test.ts'],
					environment: 'node',
					globalSetup: ['e2e/global-setup.ts'],
					testTimeout: 20_000,
					hookTimeout: 120_000
				}
			},
			{
				// Server side against a real roomcast-node and its embedded NATS (built once, see e2e/global-setup.ts).
				// @roomcast/client from source, so that tests need no build.
				resolve: { alias: [{ find: /^@roomcast\/client$/, replacement: new URL('./packages/client/src/index.ts', import.meta.url).pathname }] },
				test: {
					name: 'sveltekit',
					include: ['packages/sveltekit/test/**/*.test.ts'],
					environment: 'node',
					globalSetup: ['e2e/global-setup.ts'],
					testTimeout: 20_000,
					hookTimeout: 120_000
				}
			}
		]
	}
});
