import { systemClock, type Clock } from '../clock.js';
import type { ConnectionOptions } from '../connection.js';
import { Emitter } from '../emitter.js';
import type { ConnectionState, Link, LinkEvents } from '../link.js';
import type { ClientMessage } from '../protocol.js';
import { WorkerLink, type SharedWorkerLike, type WorkerLinkOptions } from './port-link.js';

export interface FallbackLinkOptions extends Omit<WorkerLinkOptions, 'onHub' | 'clock'> {
	clock?: Clock | undefined;
	/**
	 * How long (ms) the worker may take to answer the tab's hello before the
	 * tab gives up on it and opens a direct socket. Default 5 000.
	 */
	timeout?: number | undefined;
	/** Builds the direct link used when the worker fails. */
	direct: () => Link;
}

/**
 * A {@link WorkerLink} that falls back to a direct socket when the
 * SharedWorker never comes up: its script fails to load (404, a syntax
 * error, a CSP refusal: the worker's `error` event) or its hub does not
 * answer the tab's hello within `timeout`. Without it such a tab would stay
 * `connecting` for ever. Once the hub has answered, the worker is trusted and
 * the link stays shared.
 */
export class FallbackLink implements Link {
	#inner: Link;
	#emitter = new Emitter<LinkEvents>();
	#offs: Array<() => void> = [];
	#clock: Clock;
	#timeoutMs: number;
	#direct: () => Link;
	#timer: unknown;
	#hubSeen = false;
	#fellBack = false;
	#opened = false;
	#closed = false;

	constructor(worker: SharedWorkerLike, opts: ConnectionOptions, o: FallbackLinkOptions) {
		this.#clock = o.clock ?? systemClock;
		this.#timeoutMs = o.timeout ?? 5_000;
		this.#direct = o.direct;
		const { direct: _direct, timeout: _timeout, ...workerOpts } = o;
		this.#inner = new WorkerLink(worker.port, opts, {
			...workerOpts,
			clock: this.#clock,
			onHub: () => {
				this.#hubSeen = true;
				this.#clearTimer();
			}
		});
		this.#forward();
		try {
			worker.addEventListener?.('error', () => this.#fallBack('the SharedWorker script failed to load'));
		} catch {
			// Not an event target: the timeout alone decides.
		}
	}

	/** True while the socket is the SharedWorker's; false after falling back to a direct socket. */
	get shared(): boolean {
		return !this.#fellBack;
	}

	get state(): ConnectionState {
		return this.#inner.state;
	}

	on<K extends keyof LinkEvents>(name: K, fn: LinkEvents[K]): () => void {
		return this.#emitter.on(name, fn);
	}

	open(): void {
		this.#opened = true;
		this.#closed = false;
		this.#inner.open();
		if (!this.#hubSeen && !this.#fellBack && this.#timer === undefined) {
			this.#timer = this.#clock.setTimeout(() => {
				this.#timer = undefined;
				this.#fallBack(`the SharedWorker did not answer within ${this.#timeoutMs} ms`);
			}, this.#timeoutMs);
		}
	}

	close(): void {
		this.#opened = false;
		this.#closed = true;
		this.#clearTimer();
		this.#inner.close();
	}

	send(msg: ClientMessage): boolean {
		return this.#inner.send(msg);
	}

	wake(): void {
		this.#inner.wake();
	}

	#forward(): void {
		const inner = this.#inner;
		this.#offs = [
			inner.on('state', (info) => this.#emitter.emit('state', info)),
			inner.on('message', (msg) => this.#emitter.emit('message', msg)),
			inner.on('error', (err) => this.#emitter.emit('error', err))
		];
	}

	#clearTimer(): void {
		if (this.#timer !== undefined) this.#clock.clearTimeout(this.#timer);
		this.#timer = undefined;
	}

	#fallBack(why: string): void {
		if (this.#hubSeen || this.#fellBack || this.#closed) return;
		this.#fellBack = true;
		this.#clearTimer();
		// Detach quietly: the tab never saw the worker's socket, so no `closed` state leaks out.
		this.#offs.forEach((f) => f());
		this.#inner.close();
		(globalThis as { console?: { warn(...a: unknown[]): void } }).console?.warn(`roomcast: ${why}; using a direct socket`);
		this.#inner = this.#direct();
		this.#forward();
		if (this.#opened) this.#inner.open();
	}
}
