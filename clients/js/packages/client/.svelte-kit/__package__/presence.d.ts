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
/**
 * Keeps per-room presence lists from `session:list`, `session:connected`,
 * `session:disconnected` and `session:updated` messages. Pure: no I/O, no timers.
 */
export declare class PresenceTracker<M = Meta> {
    #private;
    /**
     * Applies one server message. Returns the room whose presence changed, or
     * undefined when the message is not about presence.
     */
    apply(msg: ServerMessage<EventMap, M>): string | undefined;
    /** Whether a list for `room` is known (a session:list or delta arrived). */
    has(room: string): boolean;
    /** The sessions in `room`, oldest connection first (ties by session id). */
    sessions(room: string): Session<M>[];
    count(room: string): number;
    get(room: string): RoomPresence<M>;
    /** Forgets a room (after leaving it). */
    delete(room: string): void;
    rooms(): string[];
    clear(): void;
}
