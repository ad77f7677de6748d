import { systemClock } from '../clock.js';
import { Emitter } from '../emitter.js';
import { fromWireError, fromWireState } from './messages.js';
let tabSeq = 0;
/**
 * A tab's side of the SharedWorker: a {@link Link} whose socket lives in the
 * worker's hub. The tab sends heartbeats and holds a Web Lock for its life
 * (the hub waits on it to learn at once when the tab is gone, since
 * MessagePort has no close event), says `bye` on pagehide and hello again on
 * pageshow (back/forward cache), answers the hub's mint requests with its own
 * `mint`, and forwards wake signals.
 */
export class WorkerLink {
    #port;
    #opts;
    #clock;
    #hbMs;
    #win;
    #locks;
    #emitter = new Emitter();
    #state = 'idle';
    #hb;
    #lockName;
    #releaseLock;
    #unlisten;
    #said = false;
    constructor(port, opts, o = {}) {
        this.#port = port;
        this.#opts = opts;
        this.#clock = o.clock ?? systemClock;
        this.#hbMs = o.heartbeat ?? 5_000;
        const g = globalThis;
        this.#win = o.window !== undefined ? o.window : typeof g.addEventListener === 'function' ? g : null;
        this.#locks = o.locks !== undefined ? o.locks : (g.navigator?.locks ?? null);
        port.onmessage = (ev) => this.#onHub(ev.data);
        port.start?.();
    }
    get state() {
        return this.#state;
    }
    on(name, fn) {
        return this.#emitter.on(name, fn);
    }
    open() {
        if (this.#said)
            return;
        this.#said = true;
        this.#state = 'connecting';
        this.#emitter.emit('state', { state: 'connecting' });
        if (this.#win && !this.#unlisten) {
            const win = this.#win;
            const hide = () => this.#bye();
            const show = (ev) => {
                if (ev.persisted && this.#state !== 'closed') {
                    this.#said = false;
                    this.open();
                }
            };
            win.addEventListener('pagehide', hide);
            win.addEventListener('pageshow', show);
            this.#unlisten = () => {
                win.removeEventListener('pagehide', hide);
                win.removeEventListener('pageshow', show);
            };
        }
        void this.#hello();
    }
    async #hello() {
        const hello = { t: 'hello', config: hubConfig(this.#opts) };
        if (this.#locks && !this.#lockName) {
            const name = `roomcast-tab-${Date.now().toString(36)}-${(tabSeq++).toString(36)}-${Math.random().toString(36).slice(2)}`;
            try {
                await new Promise((acquired, failed) => {
                    this.#locks
                        .request(name, () => new Promise((release) => {
                        this.#releaseLock = release;
                        acquired();
                    }))
                        .catch(failed);
                });
                this.#lockName = name;
            }
            catch {
                // No lock: the heartbeat alone detects a dead tab.
            }
        }
        if (this.#lockName)
            hello.lock = this.#lockName;
        this.#post(hello);
        this.#beat();
    }
    #beat() {
        if (this.#hb !== undefined)
            this.#clock.clearTimeout(this.#hb);
        this.#hb = this.#clock.setTimeout(() => {
            if (!this.#said)
                return;
            this.#post({ t: 'hb' });
            this.#beat();
        }, this.#hbMs);
    }
    #bye() {
        if (!this.#said)
            return;
        this.#said = false;
        this.#post({ t: 'bye' });
        if (this.#hb !== undefined)
            this.#clock.clearTimeout(this.#hb);
        this.#hb = undefined;
    }
    /** Detaches this tab from the shared socket (other tabs keep it). */
    close() {
        this.#bye();
        this.#unlisten?.();
        this.#unlisten = undefined;
        this.#releaseLock?.();
        this.#releaseLock = undefined;
        this.#lockName = undefined;
        if (this.#state !== 'closed') {
            this.#state = 'closed';
            this.#emitter.emit('state', { state: 'closed', code: 1000, reason: 'client closed' });
        }
    }
    send(msg) {
        if (this.#state !== 'open')
            return false;
        this.#post({ t: 'msg', msg });
        return true;
    }
    wake() {
        if (this.#said)
            this.#post({ t: 'wake' });
    }
    #post(m) {
        this.#port.postMessage(m);
    }
    #onHub(m) {
        if (!m || typeof m !== 'object' || this.#state === 'closed')
            return;
        switch (m.t) {
            case 'state': {
                const info = fromWireState(m.info);
                this.#state = info.state;
                this.#emitter.emit('state', info);
                return;
            }
            case 'msg':
                this.#emitter.emit('message', m.msg);
                return;
            case 'error':
                this.#emitter.emit('error', fromWireError(m.error));
                return;
            case 'mint':
                void this.#mint(m.req);
                return;
        }
    }
    async #mint(req) {
        const mint = this.#opts.mint;
        if (!mint)
            return this.#post({ t: 'minted', req, error: 'this tab cannot mint' });
        try {
            const url = String(await mint());
            // Resolve relative URLs against the tab's page, which the worker cannot see.
            const loc = globalThis.location;
            const base = this.#opts.baseUrl ?? loc?.href;
            this.#post({ t: 'minted', req, url: base === undefined ? url : new URL(url, String(base)).toString() });
        }
        catch (err) {
            this.#post({ t: 'minted', req, error: String(err) });
        }
    }
}
/** The serializable connection options for the hub. */
export function hubConfig(o) {
    const loc = globalThis.location;
    const c = { canMint: typeof o.mint === 'function' };
    if (o.url !== undefined)
        c.url = String(o.url);
    if (o.key !== undefined)
        c.key = o.key;
    const base = o.baseUrl ?? loc?.href;
    if (base !== undefined)
        c.baseUrl = String(base);
    if (o.backoff)
        c.backoff = { ...o.backoff };
    if (o.pingInterval !== undefined)
        c.pingInterval = o.pingInterval;
    if (o.pongTimeout !== undefined)
        c.pongTimeout = o.pongTimeout;
    if (o.connectTimeout !== undefined)
        c.connectTimeout = o.connectTimeout;
    if (o.fatalCloseCodes)
        c.fatalCloseCodes = [...o.fatalCloseCodes];
    return c;
}
