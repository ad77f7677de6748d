import type { Clock } from '../src/clock.js';
import type { WebSocketLike } from '../src/connection.js';

/** A clock whose time moves only when a test says so. */
export class ManualClock implements Clock {
	#now = 0;
	#seq = 0;
	#timers = new Map<number, { at: number; fn: () => void }>();

	now(): number {
		return this.#now;
	}

	setTimeout(fn: () => void, ms: number): unknown {
		const id = ++this.#seq;
		this.#timers.set(id, { at: this.#now + Math.max(0, ms), fn });
		return id;
	}

	clearTimeout(h: unknown): void {
		this.#timers.delete(h as number);
	}

	/** Pending timers' delays from now, soonest first. */
	pending(): number[] {
		return [...this.#timers.values()].map((t) => t.at - this.#now).sort((a, b) => a - b);
	}

	/** Moves time forward by `ms`, firing due timers in order (timers they set fire too when due). */
	advance(ms: number): void {
		const end = this.#now + ms;
		for (;;) {
			let next: [number, { at: number; fn: () => void }] | undefined;
			for (const e of this.#timers) if (e[1].at <= end && (!next || e[1].at < next[1].at || (e[1].at === next[1].at && e[0] < next[0]))) next = e;
			if (!next) break;
			this.#timers.delete(next[0]);
			this.#now = next[1].at;
			next[1].fn();
		}
		this.#now = end;
	}
}

/**
 * A test double for the browser WebSocket: records what the client sends and
 * lets the test play the node (welcome, frames, close).
 */
export class FakeWebSocket implements WebSocketLike {
	static instances: FakeWebSocket[] = [];
	static reset(): void {
		FakeWebSocket.instances = [];
	}
	static get last(): FakeWebSocket {
		const ws = FakeWebSocket.instances.at(-1);
		if (!ws) throw new Error('no socket was created');
		return ws;
	}

	readonly url: string;
	readyState = 0;
	sent: string[] = [];
	closedWith: { code?: number; reason?: string } | undefined;
	onopen: ((ev: unknown) => void) | null = null;
	onmessage: ((ev: { data: unknown }) => void) | null = null;
	onclose: ((ev: { code: number; reason: string }) => void) | null = null;
	onerror: ((ev: unknown) => void) | null = null;

	constructor(url: string) {
		this.url = url;
		FakeWebSocket.instances.push(this);
	}

	send(data: string): void {
		if (this.readyState !== 1) throw new Error('InvalidStateError: not open');
		this.sent.push(data);
	}

	close(code?: number, reason?: string): void {
		this.closedWith = { code, reason };
		this.readyState = 3;
	}

	/** Parsed messages the client sent. */
	get messages(): Array<Record<string, unknown>> {
		return this.sent.map((s) => JSON.parse(s) as Record<string, unknown>);
	}

	/** Sent messages of one type. */
	ofType(type: string): Array<Record<string, unknown>> {
		return this.messages.filter((m) => m.type === type);
	}

	// ── the node's side ──

	serverOpen(): void {
		this.readyState = 1;
		this.onopen?.({});
	}

	/** Sends one frame holding these messages, "\n"-separated. */
	serverSend(...msgs: unknown[]): void {
		this.onmessage?.({ data: msgs.map((m) => (typeof m === 'string' ? m : JSON.stringify(m))).join('\n') });
	}

	welcome(extra: Record<string, unknown> = {}): void {
		if (this.readyState !== 1) this.serverOpen();
		this.serverSend({ type: 'welcome', session: 's1', node: 'n1', user: 'u', meta: {}, rooms: [], ping_interval: 25, ...extra });
	}

	serverClose(code: number, reason = ''): void {
		this.readyState = 3;
		this.onclose?.({ code, reason });
	}
}

/** Lets pending promise callbacks run. */
export async function flush(): Promise<void> {
	for (let i = 0; i < 5; i++) await Promise.resolve();
}

/** A random source replaying the given values (then 0.5). */
export function sequence(...values: number[]): () => number {
	let i = 0;
	return () => (i < values.length ? values[i++]! : 0.5);
}
