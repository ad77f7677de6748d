import { defineConfig } from 'vitest/config';

// Browser end-to-end tests (npm run e2e): one file at a time, real Chromium.
export default defineConfig({
	test: {
		include: ['e2e/**/*.e2e.ts'],
		environment: 'node',
		fileParallelism: false,
		testTimeout: 60_000,
		hookTimeout: 180_000
	}
});
