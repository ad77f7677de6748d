/**
 * The SharedWorker script: `@roomcast/client/worker`. One instance per origin
 * (and worker name) holds one socket for every tab; see {@link Hub}.
 *
 * With Vite:
 * ```ts
 * new RoomcastClient({
 *   mint,
 *   sharedWorker: () => new SharedWorker(new URL('@roomcast/client/worker', import.meta.url), { type: 'module', name: 'roomcast' })
 * });
 * ```
 */
import { Connection } from './connection.js';
import { Hub } from './shared/hub.js';
/** Starts the hub on a SharedWorker global scope. Exported for custom worker scripts. */
export function startHub(scope) {
    const hub = new Hub({
        createLink: (config, mint) => {
            const opts = { ...config };
            if (mint)
                opts.mint = mint;
            return new Connection(opts);
        }
    });
    scope.onconnect = (ev) => {
        const port = ev.ports[0];
        if (!port)
            return;
        const watched = new Set();
        port.onmessage = (e) => {
            const m = e.data;
            if (m && m.t === 'hello' && m.lock && !watched.has(m.lock) && scope.navigator?.locks) {
                // The tab holds this lock for its whole life: we get it when the tab is gone.
                watched.add(m.lock);
                scope.navigator.locks.request(m.lock, () => hub.disconnect(port)).catch(() => { });
            }
            hub.receive(port, m);
        };
        port.start();
    };
    return hub;
}
const scope = globalThis;
if (typeof globalThis.SharedWorkerGlobalScope === 'function') {
    startHub(scope);
}
