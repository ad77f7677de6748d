import { fetchActionUrl } from './action.js';
import { systemClock } from './clock.js';
import { Connection } from './connection.js';
import { Emitter } from './emitter.js';
import { RoomcastError } from './errors.js';
import { PresenceTracker } from './presence.js';
import { isValidRoom } from './protocol.js';
import { WorkerLink } from './shared/port-link.js';
/**
 * A roomcast client: rooms, presence, publish, rpc and direct messages over
 * one reconnecting connection.
 *
 * `E` maps event names to payload types; `M` types session meta.
 *
 * ```ts
 * type Events = { chat: { text: string } };
 * const rc = new RoomcastClient<Events, { name: string }>({ mint: getUrl });
 * await rc.join('lobby', { name: 'ada' });
 * rc.on('chat', (msg, { from }) => console.log(from, msg.text));
 * await rc.publish('lobby', 'chat', { text: 'hi' });
 * ```
 */
export class RoomcastClient {
    #link;
    #clock;
    #opts;
    #pending = new Map();
    #nextId = 1;
    #rooms = new Map();
    #presence = new PresenceTracker();
    #positions = new Map();
    #presenceWaiters = new Map();
    #welcome;
    #listeners = new Map();
    #sys = new Emitter();
    #offs = [];
    constructor(options = {}) {
        this.#opts = options;
        this.#clock = options.clock ?? systemClock;
        this.#link = options.link ?? createLink(options);
        this.#offs.push(this.#link.on('state', (info) => this.#onState(info)), this.#link.on('message', (msg) => this.#onMessage(msg)), this.#link.on('error', (err) => this.#sys.emit('error', err)));
        if (options.autoOpen !== false)
            this.#link.open();
    }
    /** Connection state; see {@link ConnectionState}. */
    get state() {
        return this.#link.state;
    }
    /** The last `welcome` (session id, node id, user, meta), or undefined before the first. */
    get welcome() {
        return this.#welcome;
    }
    /** This session's id on the node (changes on reconnect). */
    get session() {
        return this.#welcome?.session;
    }
    /** Rooms this client is in or joining. */
    get rooms() {
        return [...this.#rooms.keys()];
    }
    /** Whether the client uses a SharedWorker (one socket for all tabs). */
    get shared() {
        return this.#link instanceof WorkerLink;
    }
    /** Connects (again) after `close()` or with `autoOpen: false`. */
    open() {
        this.#link.open();
    }
    /** Closes the connection for good; pending requests reject with `closed`. */
    close() {
        this.#link.close();
    }
    /** Closes and drops every listener. */
    destroy() {
        this.close();
        this.#offs.forEach((f) => f());
        this.#listeners.clear();
        this.#sys.clear();
    }
    /**
     * Joins `room` with optional session `meta`. Resolves on the node's ack
     * (a `session:list` follows). The room is re-joined after every reconnect
     * until {@link leave}. Rejects with a {@link RoomcastError} (`bad_request`,
     * `forbidden`, …); calls made while disconnected wait for the connection.
     */
    join(room, meta) {
        if (!isValidRoom(room)) {
            return Promise.reject(new RoomcastError('bad_request', `room "${room}" is invalid: use 1–128 chars of [A-Za-z0-9_-:@=] in dot-separated tokens`));
        }
        const known = this.#rooms.get(room);
        if (known?.auto)
            return Promise.resolve();
        this.#rooms.set(room, { meta, auto: false });
        const msg = { type: 'join', room };
        if (meta !== undefined)
            msg.meta = meta;
        this.#addSince(msg);
        return this.#request(msg, { join: true }).then(() => undefined);
    }
    /** Leaves `room`; its presence list is dropped. Resolves on the node's ack (at once when disconnected). */
    leave(room) {
        this.#rooms.delete(room);
        this.#presence.delete(room);
        this.#positions.delete(room);
        for (const p of [...this.#pending.values()]) {
            if (p.join && !p.sent && p.msg.room === room) {
                this.#settle(p.id)?.reject(new RoomcastError('closed', `left ${room} before the join was sent`));
            }
        }
        if (this.#link.state !== 'open')
            return Promise.resolve();
        return this.#request({ type: 'leave', room }).then(() => undefined);
    }
    /**
     * Broadcasts `event` with `data` to every session in `room` (this one too
     * unless `echo: false`). Resolves on the node's ack; the returned promise
     * may be ignored (failures then go unnoticed without an unhandled-rejection warning).
     */
    publish(room, event, data, opts = {}) {
        const msg = { type: 'publish', room, event, data };
        if (opts.echo === false)
            msg.echo = false;
        return quiet(this.#request(msg).then(() => undefined));
    }
    /** Sends `event` to the app back-end that owns this session (`rc.send.<session>`). Resolves on ack. */
    send(event, data) {
        return quiet(this.#request({ type: 'send', event, data }).then(() => undefined));
    }
    /**
     * Calls `method` on the back-ends (`rc.rpc.<method>`) and resolves with the
     * reply's data. Rejects with a {@link RoomcastError}: the node's code, or
     * `timeout` / `disconnected` / `closed`.
     */
    rpc(method, data, opts = {}) {
        const timeout = opts.timeout ?? this.#opts.rpcTimeout ?? 10_000;
        return this.#request({ type: 'rpc', method, data: data ?? null }, { timeout });
    }
    /** Asks the node for a fresh `session:list` of `room`; resolves with the new presence. */
    presence(room) {
        return new Promise((resolve, reject) => {
            const waiters = this.#presenceWaiters.get(room) ?? [];
            waiters.push(resolve);
            this.#presenceWaiters.set(room, waiters);
            this.#request({ type: 'presence', room }).catch((err) => {
                const list = this.#presenceWaiters.get(room);
                const i = list?.indexOf(resolve) ?? -1;
                if (list && i >= 0)
                    list.splice(i, 1);
                reject(err);
            });
        });
    }
    /** The sessions in `room` as last known, oldest first. */
    sessions(room) {
        return this.#presence.sessions(room);
    }
    /** The member count of `room` as the node last reported it. */
    count(room) {
        return this.#presence.count(room);
    }
    /** The last history position seen in `room` (rooms with history only). */
    position(room) {
        return this.#positions.get(room);
    }
    on(event, fn) {
        let set = this.#listeners.get(event);
        if (!set)
            this.#listeners.set(event, (set = new Set()));
        const f = fn;
        set.add(f);
        return () => {
            set.delete(f);
        };
    }
    /** Listens to client-level notifications: state, welcome, error, presence, … */
    listen(name, fn) {
        return this.#sys.on(name, fn);
    }
    // ── internals ─────────────────────────────────────────────────────────
    #addSince(msg) {
        if (!this.#opts.recover || msg.type !== 'join')
            return;
        const pos = this.#positions.get(msg.room);
        if (pos)
            msg.since = pos;
    }
    #request(msg, o = {}) {
        const queued = [...this.#pending.values()].filter((p) => !p.sent).length;
        if (this.#link.state !== 'open' && queued >= (this.#opts.maxQueued ?? 1000)) {
            return Promise.reject(new RoomcastError('unavailable', 'not connected and too many requests queued'));
        }
        if (this.#link.state === 'closed') {
            return Promise.reject(new RoomcastError('closed', 'the client is closed: call open() first'));
        }
        const id = this.#nextId++;
        msg.id = id;
        return new Promise((resolve, reject) => {
            const p = { id, msg, join: o.join ?? false, sent: false, resolve, reject };
            if (o.timeout !== undefined) {
                p.timer = this.#clock.setTimeout(() => {
                    this.#settle(id)?.reject(new RoomcastError('timeout', `no reply within ${o.timeout} ms`, { id }));
                }, o.timeout);
            }
            this.#pending.set(id, p);
            if (this.#link.state === 'open')
                p.sent = this.#link.send(msg);
        });
    }
    /** Removes a pending request and returns it (undefined when unknown). */
    #settle(id) {
        const p = this.#pending.get(id);
        if (!p)
            return undefined;
        this.#pending.delete(id);
        if (p.timer !== undefined)
            this.#clock.clearTimeout(p.timer);
        return p;
    }
    #onState(info) {
        if (info.state !== 'open') {
            for (const p of [...this.#pending.values()]) {
                if (info.state === 'closed') {
                    this.#settle(p.id)?.reject(info.error ?? new RoomcastError('closed', 'the connection was closed'));
                }
                else if (p.join) {
                    p.sent = false; // re-sent after the next welcome
                }
                else if (p.sent) {
                    this.#settle(p.id)?.reject(new RoomcastError('disconnected', 'the connection dropped before the reply; the request may or may not have been applied', {
                        id: p.id
                    }));
                }
            }
        }
        this.#sys.emit('state', info);
    }
    #onMessage(msg) {
        this.#sys.emit('message', msg);
        switch (msg.type) {
            case 'welcome':
                return this.#onWelcome(msg);
            case 'ack': {
                const p = this.#settle(msg.id);
                p?.resolve(msg);
                return;
            }
            case 'reply':
                this.#settle(msg.id)?.resolve(msg.data);
                return;
            case 'error': {
                const err = new RoomcastError(msg.code, msg.message || msg.code, msg.id === undefined ? {} : { id: msg.id });
                const p = msg.id === undefined ? undefined : this.#settle(msg.id);
                if (!p)
                    return this.#sys.emit('error', err);
                if (p.join) {
                    const room = p.msg.room;
                    // Stop re-joining a room the node refuses, unless a newer join is pending.
                    const newer = [...this.#pending.values()].some((q) => q.join && q.msg.room === room);
                    if (!newer) {
                        this.#rooms.delete(room);
                        this.#presence.delete(room);
                    }
                }
                p.reject(err);
                return;
            }
            case 'event':
                return this.#onEvent(msg);
            case 'session:list':
            case 'session:connected':
            case 'session:disconnected':
            case 'session:updated': {
                // Ignore presence for rooms we left (a late delta would resurrect the list).
                if (!this.#rooms.has(msg.room))
                    return;
                this.#presence.apply(msg);
                const p = this.#presence.get(msg.room);
                if (msg.type !== 'session:list')
                    this.#sys.emit(msg.type, msg);
                this.#sys.emit('presence', p);
                if (msg.type === 'session:list') {
                    const waiters = this.#presenceWaiters.get(msg.room);
                    if (waiters) {
                        this.#presenceWaiters.delete(msg.room);
                        waiters.forEach((w) => w(p));
                    }
                }
                return;
            }
            default:
                return;
        }
    }
    #onWelcome(msg) {
        this.#welcome = msg;
        for (const room of msg.rooms ?? []) {
            const r = this.#rooms.get(room);
            this.#rooms.set(room, { meta: r?.meta, auto: true });
        }
        this.#sys.emit('welcome', msg);
        // Re-join: reuse a pending join for the room, or start a background one.
        const pendingJoins = new Map();
        for (const p of this.#pending.values()) {
            if (p.join)
                pendingJoins.set(p.msg.room, p);
        }
        for (const [room, r] of this.#rooms) {
            if (r.auto) {
                const p = pendingJoins.get(room);
                if (p)
                    this.#settle(p.id)?.resolve(undefined);
                continue;
            }
            if (pendingJoins.has(room))
                continue;
            const msg = { type: 'join', room };
            if (r.meta !== undefined)
                msg.meta = r.meta;
            this.#addSince(msg);
            this.#request(msg, { join: true }).catch((err) => {
                this.#sys.emit('error', new RoomcastError(err.code, `re-join of ${room} failed: ${err.message}`, err.id === undefined ? {} : { id: err.id }));
            });
        }
        // Send what waited for the connection, joins first, in order.
        const unsent = [...this.#pending.values()].filter((p) => !p.sent).sort((a, b) => Number(b.join) - Number(a.join) || a.id - b.id);
        for (const p of unsent) {
            if (p.join)
                this.#addSince(p.msg);
            p.sent = this.#link.send(p.msg);
        }
    }
    #onEvent(msg) {
        if (msg.room !== undefined && typeof msg.seq === 'number') {
            const pos = { seq: msg.seq };
            if (msg.epoch !== undefined)
                pos.epoch = msg.epoch;
            this.#positions.set(msg.room, pos);
        }
        const ctx = {};
        if (msg.room !== undefined)
            ctx.room = msg.room;
        if (msg.from !== undefined)
            ctx.from = msg.from;
        if (msg.seq !== undefined)
            ctx.seq = msg.seq;
        if (msg.epoch !== undefined)
            ctx.epoch = msg.epoch;
        this.#sys.emit('event', msg);
        for (const fn of [...(this.#listeners.get(msg.event) ?? [])])
            call(fn, msg.data, ctx);
        const all = this.#listeners.get('*');
        if (all) {
            const c = { ...ctx, event: msg.event };
            for (const fn of [...all])
                call(fn, msg.data, c);
        }
    }
}
function call(fn, data, ctx) {
    try {
        fn(data, ctx);
    }
    catch (err) {
        queueMicrotask(() => {
            throw err;
        });
    }
}
/** Marks a promise as handled (no unhandled-rejection warning) while keeping it rejectable for awaiting callers. */
function quiet(p) {
    p.catch(() => { });
    return p;
}
/** Builds the link for `options`: a SharedWorker port when asked and possible, else a direct socket. */
export function createLink(options) {
    let mint = options.mint;
    if (!mint && options.action !== undefined) {
        const action = options.action;
        const init = options.actionInit;
        mint = () => fetchActionUrl(action, init);
    }
    const connOpts = { ...options };
    if (mint)
        connOpts.mint = mint;
    if (options.sharedWorker && typeof globalThis.SharedWorker === 'function') {
        try {
            const worker = options.sharedWorker();
            return new WorkerLink(worker.port, connOpts, { clock: options.clock });
        }
        catch {
            // Fall back to a direct socket (e.g. a CSP forbids workers).
        }
    }
    return new Connection(connOpts);
}
