import { svelte } from '@sveltejs/vite-plugin-svelte';
import { defineConfig } from 'vitest/config';

export default defineConfig({
	// Compiles .svelte and .svelte.ts (runes) in tests; the browser build of svelte so effects run.
	plugins: [svelte({ configFile: false, compilerOptions: { runes: true } })],
	resolve: { conditions: ['browser'] },
	test: {
		include: ['packages/*/test/**/*.test.ts', 'demo/**/*.test.ts'],
		environment: 'node',
		pool: 'threads',
		maxWorkers: 2
	}
});
