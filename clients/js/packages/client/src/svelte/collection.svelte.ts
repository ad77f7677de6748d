import type { EventContext } from '../client.js';
import { ENTITY_EVENTS, EntityCollection, type CollectionOptions, type EntityEventData, type EntityEventName } from '../collection.js';

/** Anything with a `*` event listener: a RoomcastClient, or a Roomcast (through its `client`). */
export interface EventSource {
	on(event: '*', fn: (data: unknown, ctx: EventContext & { event: string }) => void): () => void;
}

export type CollectionSource = EventSource | { client: EventSource };

/**
 * A reactive list kept from `entity:created|updated|deleted` events
 * (`{collection, id, data, version}`), ignoring stale versions. Read `items`
 * in templates.
 */
export class Collection<T> {
	/** The current items (replaced on each change). */
	items: T[] = $state.raw([]);
	readonly #core: EntityCollection<T>;
	#offs: Array<() => void> = [];

	constructor(source: CollectionSource, collection: string, opts: CollectionOptions<T> = {}) {
		this.#core = new EntityCollection<T>(collection, opts);
		this.items = this.#core.items();
		const client = 'client' in source ? source.client : source;
		this.#offs.push(
			client.on('*', (data, ctx) => {
				if (ENTITY_EVENTS.includes(ctx.event as EntityEventName)) this.apply(ctx.event, data as EntityEventData<T>);
			})
		);
	}

	/** Applies one event by hand (e.g. from your own transport). Returns true when the list changed. */
	apply(event: string, payload: EntityEventData<T>): boolean {
		const changed = this.#core.apply(event, payload);
		if (changed) this.items = this.#core.items();
		return changed;
	}

	get(id: string | number): T | undefined {
		return this.#core.get(id);
	}

	destroy(): void {
		this.#offs.forEach((f) => f());
		this.#offs = [];
	}
}

/** Creates a {@link Collection} listening on `source`'s entity events for `collection`. */
export function createCollection<T>(
	source: CollectionSource,
	collection: string,
	opts: CollectionOptions<T> = {}
): Collection<T> {
	return new Collection<T>(source, collection, opts);
}
