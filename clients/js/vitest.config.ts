import { defineConfig } from 'vitest/config';

export default defineConfig({
	test: {
		include: ['packages/*/test/**/*.test.ts', 'demo/**/*.test.ts'],
		environment: 'node',
		pool: 'threads',
		maxWorkers: 2
	}
});
