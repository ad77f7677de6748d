/**
 * Svelte 5 bindings for roomcast: {@link createRoomcast}, the `<WebSocket>`
 * component and {@link createCollection}.
 */
export { default as WebSocket } from './WebSocket.svelte';
export { Roomcast, RoomHandle, createRoomcast } from './roomcast.svelte.js';
export type { ReceivedEvent, RoomcastOptions } from './roomcast.svelte.js';
export { Collection, createCollection } from './collection.svelte.js';
export type { CollectionSource, EventSource } from './collection.svelte.js';
export type { WebSocketController } from './controller.js';
export { RoomcastClient, RoomcastError } from '../index.js';
export type * from '../index.js';
