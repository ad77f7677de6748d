import { defineConfig } from 'vitest/config';

// Browser end-to-end tests (npm run e2e): one file at a time, real Chromium, real nodes.
export default defineConfig({
	test: {
		include: ['e2e/**/*.e2e.ts'],
		environment: 'node',
		fileParallelism: false,
		globalSetup: ['e2e/global-setup.ts'],
		testTimeout: 60_000,
		hookTimeout: 180_000
	}
});
