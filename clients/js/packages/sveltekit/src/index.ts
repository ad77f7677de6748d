/**
 * `@roomcast/sveltekit`: the browser side, re-exported from
 * `@roomcast/client/svelte` — the `<WebSocket>` component (the props of
 * sveltekit-websockets plus `room`), `createRoomcast()` and collections.
 * Server code lives in `@roomcast/sveltekit/server`, the Vite plugin in
 * `@roomcast/sveltekit/vite`.
 */
export * from '@roomcast/client/svelte';
export { WebSocket as default } from '@roomcast/client/svelte';
