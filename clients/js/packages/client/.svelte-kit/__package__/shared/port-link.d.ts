import { type Clock } from '../clock.js';
import type { ConnectionOptions } from '../connection.js';
import type { ConnectionState, Link, LinkEvents } from '../link.js';
import type { ClientMessage } from '../protocol.js';
import { type HubConfig } from './messages.js';
/** The parts of MessagePort the tab side uses. */
export interface PortLike {
    postMessage(msg: unknown): void;
    onmessage: ((ev: {
        data: unknown;
    }) => void) | null;
    start?(): void;
}
/** The parts of SharedWorker used. */
export interface SharedWorkerLike {
    port: PortLike;
}
export interface WorkerLinkOptions {
    clock?: Clock | undefined;
    /** Heartbeat period to the hub in ms. Default 5 000 (see the hub's timeout). */
    heartbeat?: number;
    /** Where pagehide/pageshow/visibility events come from. Default: globalThis (window). null: none. */
    window?: EventTargetLike | null;
    /** Web Locks for instant tab-death detection. Default: navigator.locks when present. null: none. */
    locks?: LocksLike | null;
}
export interface EventTargetLike {
    addEventListener(type: string, fn: (ev: {
        persisted?: boolean;
    }) => void): void;
    removeEventListener(type: string, fn: (ev: {
        persisted?: boolean;
    }) => void): void;
}
export interface LocksLike {
    request(name: string, fn: () => Promise<unknown>): Promise<unknown>;
}
/**
 * A tab's side of the SharedWorker: a {@link Link} whose socket lives in the
 * worker's hub. The tab sends heartbeats and holds a Web Lock for its life
 * (the hub waits on it to learn at once when the tab is gone, since
 * MessagePort has no close event), says `bye` on pagehide and hello again on
 * pageshow (back/forward cache), answers the hub's mint requests with its own
 * `mint`, and forwards wake signals.
 */
export declare class WorkerLink implements Link {
    #private;
    constructor(port: PortLike, opts: ConnectionOptions, o?: WorkerLinkOptions);
    get state(): ConnectionState;
    on<K extends keyof LinkEvents>(name: K, fn: LinkEvents[K]): () => void;
    open(): void;
    /** Detaches this tab from the shared socket (other tabs keep it). */
    close(): void;
    send(msg: ClientMessage): boolean;
    wake(): void;
}
/** The serializable connection options for the hub. */
export declare function hubConfig(o: ConnectionOptions): HubConfig;
