import { onDestroy } from 'svelte';
import { writable } from 'svelte/store';
import { RoomcastClient } from '../client.js';
/**
 * Svelte 5 wrapper of a {@link RoomcastClient}: `state`, `welcome`, `error`
 * and presence are `$state`, so templates and `$derived` update by themselves.
 * Build it with {@link createRoomcast}.
 */
export class Roomcast {
    client;
    /** Connection state. */
    state = $state('idle');
    /** The last state change with its cause (close code, backoff delay, error). */
    info = $state.raw({ state: 'idle' });
    /** The last welcome (session, node, user). */
    welcome = $state.raw(undefined);
    /** The last error not tied to a request (fatal close, failed mint, refused re-join). */
    error = $state.raw(undefined);
    /** Svelte store of the last received event (`$events` in templates). */
    events;
    #presence = $state({});
    #offs = [];
    constructor(options = {}) {
        const autoOpen = options.autoOpen ?? typeof window !== 'undefined';
        this.client = options.client ?? new RoomcastClient({ ...options, autoOpen: false });
        const events = writable(undefined);
        this.events = { subscribe: events.subscribe };
        const c = this.client;
        this.#offs.push(c.listen('state', (info) => {
            this.state = info.state;
            this.info = info;
        }), c.listen('welcome', (w) => {
            this.welcome = w;
            this.error = undefined;
        }), c.listen('error', (e) => {
            this.error = e;
        }), c.listen('presence', (p) => {
            this.#presence[p.room] = p;
        }), c.on('*', (data, ctx) => {
            events.set({ ...ctx, event: ctx.event, data: data, at: Date.now() });
        }));
        this.state = c.state;
        if (autoOpen && !options.client)
            c.open();
    }
    /** Reactive: the sessions in `room`, oldest first. */
    sessions(room) {
        return this.#presence[room]?.sessions ?? [];
    }
    /** Reactive: the member count of `room`. */
    count(room) {
        return this.#presence[room]?.count ?? 0;
    }
    /** Joins `room` and returns a reactive handle to it. */
    room(name, meta) {
        return new RoomHandle(this, name, meta);
    }
    join(room, meta) {
        return this.client.join(room, meta);
    }
    leave(room) {
        delete this.#presence[room];
        return this.client.leave(room);
    }
    publish(room, event, data, opts) {
        return this.client.publish(room, event, data, opts);
    }
    send(event, data) {
        return this.client.send(event, data);
    }
    rpc(method, data, opts) {
        return this.client.rpc(method, data, opts);
    }
    on(event, fn) {
        return this.client.on(event, fn);
    }
    open() {
        this.client.open();
    }
    close() {
        this.client.close();
    }
    /** Closes the connection and drops listeners. Called on component destroy when created during component init. */
    destroy() {
        this.#offs.forEach((f) => f());
        this.#offs = [];
        this.client.destroy();
    }
}
/** A joined room: reactive `sessions`, `count`, `joined` and `error`. */
export class RoomHandle {
    name;
    /** True once the node acked the join. */
    joined = $state(false);
    /** Why the join failed, if it did. */
    error = $state.raw(undefined);
    /** Resolves when joined. */
    ready;
    #rc;
    constructor(rc, name, meta) {
        this.#rc = rc;
        this.name = name;
        this.ready = rc.join(name, meta).then(() => {
            this.joined = true;
        }, (err) => {
            this.error = err;
            throw err;
        });
        this.ready.catch(() => { });
    }
    /** Reactive: the room's sessions, oldest first. */
    get sessions() {
        return this.#rc.sessions(this.name);
    }
    /** Reactive: the room's member count. */
    get count() {
        return this.#rc.count(this.name);
    }
    publish(event, data, opts) {
        return this.#rc.publish(this.name, event, data, opts);
    }
    leave() {
        this.joined = false;
        return this.#rc.leave(this.name);
    }
}
/**
 * Creates a {@link Roomcast}. Connects at once in the browser (not during
 * SSR). Called during component initialisation, it is destroyed with the component.
 *
 * ```svelte
 * <script lang="ts">
 *   import { createRoomcast } from '@roomcast/client/svelte';
 *   const rc = createRoomcast<{ chat: string }, { name: string }>({ action: '?/ws' });
 *   const lobby = rc.room('lobby', { name: 'ada' });
 * </script>
 * <p>{rc.state} — {lobby.count} online</p>
 * {#each lobby.sessions as s (s.session)}<li>{s.meta.name}</li>{/each}
 * ```
 */
export function createRoomcast(options = {}) {
    const rc = new Roomcast(options);
    try {
        onDestroy(() => rc.destroy());
    }
    catch {
        // Outside component initialisation: the caller destroys it.
    }
    return rc;
}
