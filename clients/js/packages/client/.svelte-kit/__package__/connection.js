import { fullJitter } from './backoff.js';
import { systemClock } from './clock.js';
import { Emitter } from './emitter.js';
import { closeCodeToError, FATAL_CLOSE_CODES, IMMEDIATE_CLOSE_CODES, RoomcastError } from './errors.js';
import { encode, parseFrame } from './protocol.js';
export const browserWake = (wake) => {
    const g = globalThis;
    const offs = [];
    const online = () => wake();
    if (typeof g.addEventListener === 'function') {
        g.addEventListener('online', online);
        offs.push(() => g.removeEventListener?.('online', online));
    }
    const doc = g.document;
    if (doc && typeof doc.addEventListener === 'function') {
        const visible = () => {
            if (doc.visibilityState === 'visible')
                wake();
        };
        doc.addEventListener('visibilitychange', visible);
        offs.push(() => doc.removeEventListener('visibilitychange', visible));
    }
    return () => offs.forEach((f) => f());
};
const DEFAULT_PING = 25_000;
const DEFAULT_PONG = 10_000;
const DEFAULT_CONNECT = 15_000;
/** True for `/_/connect/<key>` and `/_/connect?key=` URLs: one-time keys. */
export function isOneTimeUrl(url) {
    try {
        const p = new URL(url, 'http://x').pathname;
        return p === '/_/connect' || p.startsWith('/_/connect/');
    }
    catch {
        return false;
    }
}
/** Resolves `url` against `base` (or `location`) and maps http(s) to ws(s). */
export function toWebSocketUrl(url, base) {
    const loc = globalThis.location;
    const u = new URL(String(url), base === undefined ? loc?.href : String(base));
    if (u.protocol === 'http:')
        u.protocol = 'ws:';
    else if (u.protocol === 'https:')
        u.protocol = 'wss:';
    return u.toString();
}
/**
 * One reconnecting WebSocket to a roomcast node: full-jitter backoff that
 * never gives up, a fresh URL from `mint()` per attempt, immediate retry on
 * `online`/visible and on close 1001/1012, client pings with a pong deadline,
 * and fatal close codes surfaced as errors. It knows nothing of rooms: a
 * {@link RoomcastClient} re-joins them on each `welcome`.
 */
export class Connection {
    #opts;
    #clock;
    #random;
    #fatal;
    #emitter = new Emitter();
    #state = 'idle';
    #ws;
    /** Bumped per attempt and on close: callbacks of older sockets are ignored. */
    #gen = 0;
    #attempt = 0;
    /** Set after an immediate retry on 1001/1012, cleared by a welcome: a second drain in a row backs off. */
    #drained = false;
    /** A static one-time URL that got a welcome: it cannot be used again. */
    #spent = false;
    #pingMs;
    #timers = {};
    #unwake;
    constructor(opts = {}) {
        this.#opts = opts;
        this.#clock = opts.clock ?? systemClock;
        this.#random = opts.random ?? Math.random;
        this.#fatal = opts.fatalCloseCodes ?? FATAL_CLOSE_CODES;
        this.#pingMs = opts.pingInterval ?? DEFAULT_PING;
    }
    get state() {
        return this.#state;
    }
    /** Current reconnect attempt (0 after a welcome). */
    get attempt() {
        return this.#attempt;
    }
    on(name, fn) {
        return this.#emitter.on(name, fn);
    }
    open() {
        if (this.#state === 'open' || this.#state === 'connecting' || this.#state === 'reconnecting')
            return;
        this.#attempt = 0;
        this.#drained = false;
        this.#spent = false;
        if (!this.#unwake) {
            const src = this.#opts.wake === undefined ? browserWake : this.#opts.wake;
            this.#unwake = src?.(() => this.wake());
        }
        void this.#connect();
    }
    /** Closes for good (until `open()`); no reconnect. */
    close(code = 1000, reason = 'client closed') {
        this.#gen++;
        this.#clearTimers();
        const ws = this.#detach();
        try {
            ws?.close(code, reason);
        }
        catch {
            // already closing
        }
        this.#unwake?.();
        this.#unwake = undefined;
        if (this.#state !== 'closed')
            this.#setState({ state: 'closed', code, reason });
    }
    send(msg) {
        if (this.#state !== 'open' || !this.#ws)
            return false;
        try {
            this.#ws.send(encode(msg));
            return true;
        }
        catch {
            return false;
        }
    }
    wake() {
        if (this.#state === 'reconnecting') {
            this.#clear('retry');
            void this.#connect();
        }
        else if (this.#state === 'open') {
            this.#ping();
        }
    }
    async #connect() {
        const gen = ++this.#gen;
        this.#setState({ state: 'connecting', attempt: this.#attempt });
        const timeout = this.#opts.connectTimeout ?? DEFAULT_CONNECT;
        let url;
        try {
            url = await this.#resolveUrl(timeout);
        }
        catch (err) {
            if (gen !== this.#gen)
                return;
            const e = err instanceof RoomcastError
                ? err
                : new RoomcastError('mint_failed', `could not get a connection URL: ${String(err)}`, { cause: err });
            if (e.code !== 'mint_failed')
                return this.#die(e);
            this.#emitter.emit('error', e);
            return this.#retry({ error: e });
        }
        if (gen !== this.#gen)
            return;
        const WS = this.#opts.WebSocket ?? globalThis.WebSocket;
        if (!WS)
            return this.#die(new RoomcastError('closed', 'no WebSocket implementation: pass options.WebSocket'));
        let ws;
        try {
            ws = new WS(url);
        }
        catch (err) {
            // A malformed URL: retrying the same URL cannot help, a fresh mint might.
            const e = new RoomcastError('mint_failed', `bad connection URL ${redact(url)}: ${String(err)}`, { cause: err });
            if (!this.#opts.mint)
                return this.#die(e);
            this.#emitter.emit('error', e);
            return this.#retry({ error: e });
        }
        this.#ws = ws;
        this.#timers.connect = this.#clock.setTimeout(() => this.#lost(gen, 'no welcome in time'), timeout);
        ws.onmessage = (ev) => {
            if (gen === this.#gen)
                this.#onFrame(gen, ev.data);
        };
        ws.onclose = (ev) => {
            if (gen === this.#gen)
                this.#onClose(ev.code, ev.reason);
        };
        ws.onerror = () => {
            // A close event follows; it carries the code.
        };
        ws.onopen = null;
    }
    async #resolveUrl(timeout) {
        const o = this.#opts;
        if (o.mint) {
            let timer;
            const limit = new Promise((_, reject) => {
                timer = this.#clock.setTimeout(() => reject(new RoomcastError('mint_failed', `mint() took longer than ${timeout} ms`)), timeout);
            });
            try {
                const u = await Promise.race([o.mint(), limit]);
                if (!u)
                    throw new RoomcastError('mint_failed', 'mint() returned no URL');
                return toWebSocketUrl(u, o.baseUrl);
            }
            finally {
                this.#clock.clearTimeout(timer);
            }
        }
        let raw;
        if (o.url !== undefined)
            raw = String(o.url);
        else if (o.key !== undefined)
            raw = `/_/connect/${encodeURIComponent(o.key)}`;
        else
            throw new RoomcastError('closed', 'no url, key or mint given: nothing to connect to');
        if (this.#spent) {
            throw new RoomcastError('key_used', 'the one-time connection key was used already; pass mint (or action) to get a fresh key on each reconnect');
        }
        try {
            return toWebSocketUrl(raw, o.baseUrl);
        }
        catch (err) {
            throw new RoomcastError('closed', `bad connection URL ${redact(raw)}: ${String(err)}`, { cause: err });
        }
    }
    #onFrame(gen, data) {
        if (typeof data !== 'string')
            return; // roomcast speaks text frames only
        const msgs = parseFrame(data, (line, err) => this.#emitter.emit('error', new RoomcastError('bad_request', `unreadable message from the node: ${line.slice(0, 80)}`, { cause: err })));
        // Any message proves the connection is alive.
        this.#clear('pong');
        for (const msg of msgs) {
            if (gen !== this.#gen)
                return; // a listener closed or replaced the socket
            if (msg.type === 'pong')
                continue;
            if (msg.type === 'welcome')
                this.#onWelcome(msg);
            this.#emitter.emit('message', msg);
        }
    }
    #onWelcome(msg) {
        this.#clear('connect');
        this.#attempt = 0;
        this.#drained = false;
        if (!this.#opts.mint && this.#staticUrlIsOneTime())
            this.#spent = true;
        if (typeof msg.ping_interval === 'number' && msg.ping_interval > 0)
            this.#pingMs = msg.ping_interval * 1000;
        this.#setState({ state: 'open' });
        this.#schedulePing();
    }
    #staticUrlIsOneTime() {
        if (this.#opts.key !== undefined && this.#opts.url === undefined)
            return true;
        return this.#opts.url !== undefined && isOneTimeUrl(String(this.#opts.url));
    }
    #schedulePing() {
        this.#clear('ping');
        const gen = this.#gen;
        this.#timers.ping = this.#clock.setTimeout(() => {
            if (gen !== this.#gen)
                return;
            this.#ping();
            this.#schedulePing();
        }, this.#pingMs);
    }
    /** Sends a ping and arms the pong deadline (unless one is armed already). */
    #ping() {
        if (!this.send({ type: 'ping' }))
            return;
        if (this.#timers.pong !== undefined)
            return;
        const gen = this.#gen;
        const wait = Math.min(this.#opts.pongTimeout ?? DEFAULT_PONG, this.#pingMs);
        this.#timers.pong = this.#clock.setTimeout(() => this.#lost(gen, 'no pong in time'), wait);
    }
    /** The socket is dead without a close event (silent TCP, stalled handshake): drop it and retry. */
    #lost(gen, reason) {
        if (gen !== this.#gen)
            return;
        const ws = this.#detach();
        try {
            ws?.close(4000, reason);
        }
        catch {
            // ignore
        }
        this.#onClose(1006, reason);
    }
    #onClose(code, reason) {
        this.#clearTimers();
        this.#detach();
        this.#gen++;
        if (this.#fatal.includes(code)) {
            const what = code === 4001 ? 'the connection key is invalid, expired or used' : 'the node refused this session';
            return this.#die(new RoomcastError(closeCodeToError(code), `${what} (close ${code}${reason ? `: ${reason}` : ''})`, {
                closeCode: code
            }), code, reason);
        }
        if (code === 1000) {
            // A normal close by the node is deliberate (kicked, session ended by the back-end).
            return this.#setState({ state: 'closed', code, reason });
        }
        if (this.#spent) {
            return this.#die(new RoomcastError('key_used', 'connection lost and the one-time key cannot be reused; pass mint (or action) to reconnect'), code, reason);
        }
        if (IMMEDIATE_CLOSE_CODES.includes(code) && !this.#drained) {
            // Node draining or restarting: go elsewhere at once. The node spreads these closes over its grace period.
            this.#drained = true;
            void this.#connect();
            return;
        }
        this.#retry({ code, reason });
    }
    #retry(info) {
        const delay = fullJitter(this.#attempt, this.#opts.backoff, this.#random);
        const attempt = this.#attempt++;
        this.#setState({ ...info, state: 'reconnecting', attempt, delay });
        const gen = this.#gen;
        this.#timers.retry = this.#clock.setTimeout(() => {
            if (gen === this.#gen && this.#state === 'reconnecting')
                void this.#connect();
        }, delay);
    }
    #die(error, code, reason) {
        this.#gen++;
        this.#clearTimers();
        try {
            this.#detach()?.close(1000);
        }
        catch {
            // ignore
        }
        this.#unwake?.();
        this.#unwake = undefined;
        const info = { state: 'closed', error };
        if (code !== undefined)
            info.code = code;
        if (reason)
            info.reason = reason;
        this.#setState(info);
        this.#emitter.emit('error', error);
    }
    #detach() {
        const ws = this.#ws;
        this.#ws = undefined;
        if (ws) {
            ws.onopen = ws.onmessage = ws.onclose = ws.onerror = null;
        }
        return ws;
    }
    #setState(info) {
        this.#state = info.state;
        this.#emitter.emit('state', info);
    }
    #clear(name) {
        const h = this.#timers[name];
        if (h !== undefined)
            this.#clock.clearTimeout(h);
        delete this.#timers[name];
    }
    #clearTimers() {
        for (const k of Object.keys(this.#timers))
            this.#clear(k);
    }
}
/** Hides the key in a /_/connect/<key> URL for messages. */
function redact(url) {
    return url.replace(/(\/_\/connect\/)[^/?#]+/, '$1…').replace(/([?&]key=)[^&#]+/, '$1…');
}
