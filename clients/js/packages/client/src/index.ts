/**
 * @roomcast/client — browser client for roomcast.
 *
 * Core entry point: {@link RoomcastClient}, the reconnecting {@link Connection},
 * presence and collection helpers, and the wire protocol types.
 * Svelte 5 bindings live in `@roomcast/client/svelte`, the SharedWorker
 * script in `@roomcast/client/worker`.
 */
export { RoomcastClient, createLink } from './client.js';
export type { ClientOptions, ClientEvents, EventContext, HistoryOptions, HistoryPage, PublishOptions, RecoveredInfo, RpcOptions } from './client.js';
export { Connection, browserWake, isOneTimeUrl, toWebSocketUrl } from './connection.js';
export type { ConnectionOptions, WakeSource, WebSocketConstructor, WebSocketLike } from './connection.js';
export type { ConnectionState, Link, LinkEvents, StateInfo } from './link.js';
export { RoomcastError, FATAL_CLOSE_CODES, IMMEDIATE_CLOSE_CODES, closeCodeToError } from './errors.js';
export type { ErrorCode } from './errors.js';
export { fullJitter, DEFAULT_BACKOFF } from './backoff.js';
export type { BackoffOptions } from './backoff.js';
export { systemClock } from './clock.js';
export type { Clock } from './clock.js';
export { PresenceTracker } from './presence.js';
export type { RoomPresence } from './presence.js';
export { EntityCollection, ENTITY_EVENTS } from './collection.js';
export type { CollectionOptions, EntityEventData, EntityEventName } from './collection.js';
export { fetchActionUrl, urlFromActionBody } from './action.js';
export { parseFrame, encode, isValidRoom } from './protocol.js';
export type * from './protocol.js';
export { Hub } from './shared/hub.js';
export type { HubOptions, HubPort } from './shared/hub.js';
export { WorkerLink } from './shared/port-link.js';
export { FallbackLink } from './shared/fallback-link.js';
export type { FallbackLinkOptions } from './shared/fallback-link.js';
export type { SharedWorkerLike, PortLike, WorkerLinkOptions } from './shared/port-link.js';
export type { HubConfig, HubMessage, TabMessage } from './shared/messages.js';
