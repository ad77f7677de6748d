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
import { Hub, type HubPort } from './shared/hub.js';
import type { TabMessage } from './shared/messages.js';

interface WorkerPort extends HubPort {
	onmessage: ((ev: { data: unknown }) => void) | null;
	start(): void;
}

interface SharedWorkerScope {
	onconnect: ((ev: { ports: readonly WorkerPort[] }) => void) | null;
	navigator?: { locks?: { request(name: string, fn: () => unknown): Promise<unknown> } };
}

/** Starts the hub on a SharedWorker global scope. Exported for custom worker scripts. */
export function startHub(scope: SharedWorkerScope): Hub {
	const hub = new Hub({
		createLink: (config, mint) => {
			const opts: ConstructorParameters<typeof Connection>[0] = { ...config };
			if (mint) opts.mint = mint;
			return new Connection(opts);
		}
	});
	scope.onconnect = (ev) => {
		const port = ev.ports[0];
		if (!port) return;
		const watched = new Set<string>();
		port.onmessage = (e) => {
			const m = e.data as TabMessage;
			if (m && m.t === 'hello' && m.lock && !watched.has(m.lock) && scope.navigator?.locks) {
				// The tab holds this lock for its whole life: we get it when the tab is gone.
				watched.add(m.lock);
				scope.navigator.locks.request(m.lock, () => hub.disconnect(port)).catch(() => {});
			}
			hub.receive(port, m);
		};
		port.start();
	};
	return hub;
}

const scope = globalThis as unknown as SharedWorkerScope & { constructor?: { name?: string } };
if (typeof (globalThis as { SharedWorkerGlobalScope?: unknown }).SharedWorkerGlobalScope === 'function') {
	startHub(scope);
}
