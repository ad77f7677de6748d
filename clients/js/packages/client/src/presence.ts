import type { EventMap, Meta, ServerMessage, Session } from './protocol.js';

/** A room's presence: its sessions (oldest first) and the node's member count. */
export interface RoomPresence<M = Meta> {
	room: string;
	sessions: Session<M>[];
	/**
	 * Member count as the node reports it. Equal to sessions.length for normal
	 * rooms; large count-only rooms may list fewer sessions than they have.
	 */
	count: number;
}

interface RoomState<M> {
	sessions: Map<string, Session<M>>;
	count: number;
}

/**
 * Keeps per-room presence lists from `session:list`, `session:connected`,
 * `session:disconnected` and `session:updated` messages. Pure: no I/O, no timers.
 */
export class PresenceTracker<M = Meta> {
	#rooms = new Map<string, RoomState<M>>();

	/**
	 * Applies one server message. Returns the room whose presence changed, or
	 * undefined when the message is not about presence.
	 */
	apply(msg: ServerMessage<EventMap, M>): string | undefined {
		switch (msg.type) {
			case 'session:list': {
				const sessions = new Map<string, Session<M>>();
				for (const s of msg.sessions ?? []) sessions.set(s.session, { ...s });
				this.#rooms.set(msg.room, { sessions, count: sessions.size });
				return msg.room;
			}
			case 'session:connected':
			case 'session:updated': {
				const st = this.#room(msg.room);
				const old = st.sessions.get(msg.session);
				st.sessions.set(msg.session, {
					session: msg.session,
					user: msg.user,
					meta: msg.meta,
					connected_at: old?.connected_at ?? msg.connected_at ?? Date.now()
				});
				st.count = typeof msg.count === 'number' ? msg.count : st.sessions.size;
				return msg.room;
			}
			case 'session:disconnected': {
				const st = this.#room(msg.room);
				st.sessions.delete(msg.session);
				st.count = typeof msg.count === 'number' ? msg.count : st.sessions.size;
				return msg.room;
			}
			default:
				return undefined;
		}
	}

	#room(room: string): RoomState<M> {
		let st = this.#rooms.get(room);
		if (!st) this.#rooms.set(room, (st = { sessions: new Map(), count: 0 }));
		return st;
	}

	/** Whether a list for `room` is known (a session:list or delta arrived). */
	has(room: string): boolean {
		return this.#rooms.has(room);
	}

	/** The sessions in `room`, oldest connection first (ties by session id). */
	sessions(room: string): Session<M>[] {
		const st = this.#rooms.get(room);
		if (!st) return [];
		return [...st.sessions.values()].sort(
			(a, b) => a.connected_at - b.connected_at || (a.session < b.session ? -1 : a.session > b.session ? 1 : 0)
		);
	}

	count(room: string): number {
		return this.#rooms.get(room)?.count ?? 0;
	}

	get(room: string): RoomPresence<M> {
		return { room, sessions: this.sessions(room), count: this.count(room) };
	}

	/** Forgets a room (after leaving it). */
	delete(room: string): void {
		this.#rooms.delete(room);
	}

	rooms(): string[] {
		return [...this.#rooms.keys()];
	}

	clear(): void {
		this.#rooms.clear();
	}
}
