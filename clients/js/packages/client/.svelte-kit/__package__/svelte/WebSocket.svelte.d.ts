import { type Snippet } from 'svelte';
import { RoomcastClient, type ClientOptions } from '../client.js';
import type { RoomcastError } from '../errors.js';
import type { StateInfo } from '../link.js';
import type { EventMap, Meta } from '../protocol.js';
import type { SharedWorkerLike } from '../shared/port-link.js';
import type { ReceivedEvent } from './roomcast.svelte.js';
import type { WebSocketController } from './controller.js';
declare function $$render<E extends EventMap = EventMap, M = Meta>(): {
    props: {
        /** A SvelteKit form action (e.g. "?/ws") answering `{url}`; POSTed before every attempt, since keys are one-time. */
        action?: string;
        /** Request options for `action`. */
        init?: RequestInit;
        /** A fixed URL (continuous route). */
        url?: string | URL;
        /** Room to join once connected (re-joined after reconnects). */
        room?: string;
        /** Session meta for `room`. */
        meta?: M;
        /** Received events (bindable). */
        data?: ReceivedEvent<E>[];
        /** Connect on mount. Default true. */
        auto_open?: boolean;
        /** Bindable handle: open(), close(), client, state. */
        controller?: WebSocketController<E, M>;
        /** Share one socket between tabs (returns the SharedWorker). */
        shared?: () => SharedWorkerLike;
        /** Extra client options (backoff, timeouts…). */
        options?: ClientOptions;
        /** Rendered for each received event while connected. */
        message?: Snippet<[ReceivedEvent<E>, number, RoomcastClient<E, M>]>;
        /** Rendered while connected. */
        children?: Snippet<[RoomcastClient<E, M>]>;
        onmessage?: (ev: ReceivedEvent<E>) => void;
        onopen?: () => void;
        onclose?: (info: StateInfo) => void;
        onerror?: (err: RoomcastError) => void;
    };
    exports: {};
    bindings: "data" | "controller";
    slots: {};
    events: {};
};
declare class __sveltets_Render<E extends EventMap = EventMap, M = Meta> {
    props(): ReturnType<typeof $$render<E, M>>['props'];
    events(): ReturnType<typeof $$render<E, M>>['events'];
    slots(): ReturnType<typeof $$render<E, M>>['slots'];
    bindings(): "data" | "controller";
    exports(): {};
}
interface $$IsomorphicComponent {
    new <E extends EventMap = EventMap, M = Meta>(options: import('svelte').ComponentConstructorOptions<ReturnType<__sveltets_Render<E, M>['props']>>): import('svelte').SvelteComponent<ReturnType<__sveltets_Render<E, M>['props']>, ReturnType<__sveltets_Render<E, M>['events']>, ReturnType<__sveltets_Render<E, M>['slots']>> & {
        $$bindings?: ReturnType<__sveltets_Render<E, M>['bindings']>;
    } & ReturnType<__sveltets_Render<E, M>['exports']>;
    <E extends EventMap = EventMap, M = Meta>(internal: unknown, props: ReturnType<__sveltets_Render<E, M>['props']> & {}): ReturnType<__sveltets_Render<E, M>['exports']>;
    z_$$bindings?: ReturnType<__sveltets_Render<any, any>['bindings']>;
}
/**
 * A roomcast connection as a component, with the props of sveltekit-websockets:
 * `action` (a form action POSTed for `{url}` before every attempt) or `url`,
 * `data` (bindable list of received events), `auto_open`, `controller`
 * (bindable: open()/close()), a `message` snippet, plus `room` (and `meta`) to join.
 *
 * ```svelte
 * <WebSocket action="?/ws" room="lobby">
 * {#snippet message(m)}<p>{m.event}: {JSON.stringify(m.data)}</p>{/snippet}
 * </WebSocket>
 * ```
 */
declare const WebSocket: $$IsomorphicComponent;
type WebSocket<E extends EventMap = EventMap, M = Meta> = InstanceType<typeof WebSocket<E, M>>;
export default WebSocket;
