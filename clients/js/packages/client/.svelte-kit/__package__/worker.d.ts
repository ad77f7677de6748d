import { Hub, type HubPort } from './shared/hub.js';
interface WorkerPort extends HubPort {
    onmessage: ((ev: {
        data: unknown;
    }) => void) | null;
    start(): void;
}
interface SharedWorkerScope {
    onconnect: ((ev: {
        ports: readonly WorkerPort[];
    }) => void) | null;
    navigator?: {
        locks?: {
            request(name: string, fn: () => unknown): Promise<unknown>;
        };
    };
}
/** Starts the hub on a SharedWorker global scope. Exported for custom worker scripts. */
export declare function startHub(scope: SharedWorkerScope): Hub;
export {};
