import { vitePreprocess } from '@sveltejs/vite-plugin-svelte';

/** Used by svelte-package (and the tests) to strip TypeScript from .svelte files. */
export default {
	preprocess: vitePreprocess()
};
