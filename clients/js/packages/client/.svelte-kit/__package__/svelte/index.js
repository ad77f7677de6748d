/**
 * Svelte 5 bindings for roomcast: {@link createRoomcast}, the `<WebSocket>`
 * component and {@link createCollection}.
 */
export { default as WebSocket } from './WebSocket.svelte';
export { Roomcast, RoomHandle, createRoomcast } from './roomcast.svelte.js';
export { Collection, createCollection } from './collection.svelte.js';
export { RoomcastClient, RoomcastError } from '../index.js';
