/**
 * @roomcast/client — browser client for roomcast.
 *
 * Core entry point: {@link RoomcastClient}, the reconnecting {@link Connection},
 * presence and collection helpers, and the wire protocol types.
 * Svelte 5 bindings live in `@roomcast/client/svelte`, the SharedWorker
 * script in `@roomcast/client/worker`.
 */
export { RoomcastClient, createLink } from './client.js';
export { Connection, browserWake, isOneTimeUrl, toWebSocketUrl } from './connection.js';
export { RoomcastError, FATAL_CLOSE_CODES, IMMEDIATE_CLOSE_CODES, closeCodeToError } from './errors.js';
export { fullJitter, DEFAULT_BACKOFF } from './backoff.js';
export { systemClock } from './clock.js';
export { PresenceTracker } from './presence.js';
export { EntityCollection, ENTITY_EVENTS } from './collection.js';
export { fetchActionUrl, urlFromActionBody } from './action.js';
export { parseFrame, encode, isValidRoom } from './protocol.js';
export { Hub } from './shared/hub.js';
export { WorkerLink } from './shared/port-link.js';
