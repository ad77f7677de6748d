/**
 * `@roomcast/sveltekit/server`: sveltekit-websockets' `use()` and
 * `continuous()` on top of roomcast. The socket lives on an edge node, the
 * handler in any SvelteKit replica, NATS in between.
 */
export { Roomcast, createRoomcast, newSessionId, userFromLocals } from './roomcast.js';
export type {
	CloseOptions,
	ContinuousOptions,
	KickOptions,
	Logger,
	Minted,
	NatsSource,
	RequestEventLike,
	RoomcastServerOptions,
	SocketHandler,
	UseOptions
} from './roomcast.js';
export { RoomcastSocket, RoomcastServerError, CLOSE_KEY_EXPIRED, CLOSE_SERVICE_RESTART } from './socket.js';
export type {
	ListenerOptions,
	SocketCloseEvent,
	SocketErrorEvent,
	SocketEventMap,
	SocketKind,
	SocketMessageEvent,
	SocketOpenEvent
} from './socket.js';
export { deny } from './guard.js';
export type { Guard, GuardDenial, GuardGrant, GuardRequest, GuardResult } from './guard.js';
export { createRoomcastHandle } from './handle.js';
export type { HandleEventLike, HandleInput, HandleLike, RoomcastHandleOptions } from './handle.js';
export type { AuthRequestBody, CloseEvent, ConnectEvent, ErrorEvent, LifecycleEvent, RoomEvent } from './events.js';
export { durationMs } from './duration.js';
export type { EventMap, Meta } from '@roomcast/client';
