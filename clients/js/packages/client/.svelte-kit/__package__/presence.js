/**
 * Keeps per-room presence lists from `session:list`, `session:connected`,
 * `session:disconnected` and `session:updated` messages. Pure: no I/O, no timers.
 */
export class PresenceTracker {
    #rooms = new Map();
    /**
     * Applies one server message. Returns the room whose presence changed, or
     * undefined when the message is not about presence.
     */
    apply(msg) {
        switch (msg.type) {
            case 'session:list': {
                const sessions = new Map();
                for (const s of msg.sessions ?? [])
                    sessions.set(s.session, { ...s });
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
    #room(room) {
        let st = this.#rooms.get(room);
        if (!st)
            this.#rooms.set(room, (st = { sessions: new Map(), count: 0 }));
        return st;
    }
    /** Whether a list for `room` is known (a session:list or delta arrived). */
    has(room) {
        return this.#rooms.has(room);
    }
    /** The sessions in `room`, oldest connection first (ties by session id). */
    sessions(room) {
        const st = this.#rooms.get(room);
        if (!st)
            return [];
        return [...st.sessions.values()].sort((a, b) => a.connected_at - b.connected_at || (a.session < b.session ? -1 : a.session > b.session ? 1 : 0));
    }
    count(room) {
        return this.#rooms.get(room)?.count ?? 0;
    }
    get(room) {
        return { room, sessions: this.sessions(room), count: this.count(room) };
    }
    /** Forgets a room (after leaving it). */
    delete(room) {
        this.#rooms.delete(room);
    }
    rooms() {
        return [...this.#rooms.keys()];
    }
    clear() {
        this.#rooms.clear();
    }
}
