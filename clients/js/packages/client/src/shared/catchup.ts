import type { EventMessage, HistoryPageMessage, HistoryPosition, ServerMessage } from '../protocol.js';
import type { HubPort } from './hub.js';

/** The most events the node returns in one history page (pkg/history MaxLimit). */
const maxPage = 1000;

/** The paging fields of a `history` request. */
export interface PageQuery {
	after: number;
	limit: number;
}

/**
 * One tab's catch-up in a room the worker already holds: the tab re-joined
 * with `since` older than the worker's position `upto`, so it missed the
 * events in (since.seq, upto.seq], which the worker no longer has. They are
 * read from the room's history with `history` requests; meanwhile the live
 * events for the tab (all above `upto`) wait in `held`.
 *
 * Stream sequences have holes within a room (rooms share a stream), so a
 * missing event cannot be seen from the sequences alone. Instead every page
 * is read from one below the last sequence already covered (`after: prev - 1`)
 * and must start with that event: the history still holds `since` (and
 * removal is oldest first), so nothing after it is gone. A page that does not
 * start there means events were removed (size or ttl) and the tab must
 * refetch its state, as the node's own recovery would say (`recovered:
 * false`). The node's second proof (the stream removed nothing by age) needs
 * the stream's state, which pages do not show: a since of 0 or 1 (a tab that
 * saw an empty room, or the stream's first message) is not recovered here.
 */
export class CatchUp {
	readonly room: string;
	readonly port: HubPort;
	/** The worker's position when the tab joined: the last event replayed. */
	readonly upto: HistoryPosition;
	/** The tab's join request ids (one, unless it joined again meanwhile). */
	readonly ids: number[] = [];
	/** The missed events, in order, as live events. */
	readonly events: EventMessage[] = [];
	/** Live room events for the tab that arrived meanwhile, sent after the replay. */
	readonly held: ServerMessage[] = [];
	/** The last sequence covered so far. */
	#prev: number;

	constructor(room: string, port: HubPort, since: HistoryPosition, upto: HistoryPosition) {
		this.room = room;
		this.port = port;
		this.upto = upto;
		this.#prev = since.seq;
	}

	/** The next page to read, or false when the events cannot be proven complete. */
	query(): PageQuery | false {
		// after: 0 reads the newest events, not forward from the start.
		if (this.#prev < 2 || this.#prev >= this.upto.seq) return false;
		// At most one event per sequence in [prev, upto].
		return { after: this.#prev - 1, limit: Math.min(maxPage, this.upto.seq - this.#prev + 1) };
	}

	/**
	 * Takes the answer to {@link query}: true when every missed event is in,
	 * false when some are gone (or the history was reset), or the next page
	 * to read.
	 */
	page(p: HistoryPageMessage): PageQuery | boolean {
		if (p.epoch !== this.upto.epoch) return false;
		const events = Array.isArray(p.events) ? p.events : [];
		if (events[0]?.seq !== this.#prev) return false;
		for (const e of events.slice(1)) {
			if (typeof e.seq !== 'number' || e.seq <= this.#prev) return false;
			if (e.seq > this.upto.seq) return true;
			const ev: EventMessage = { type: 'event', room: this.room, event: e.event, data: e.data, seq: e.seq, epoch: p.epoch };
			if (e.from !== undefined) ev.from = e.from;
			this.events.push(ev);
			this.#prev = e.seq;
			if (e.seq === this.upto.seq) return true;
		}
		// Only the event the page started from: nothing stored up to upto.
		if (events.length < 2) return false;
		return this.query();
	}
}
