/**
 * Database-sync events: a back-end publishes `entity:created`,
 * `entity:updated` and `entity:deleted` with this payload to a room, and
 * clients apply them to a local list.
 */
export interface EntityEventData<T = unknown> {
	collection: string;
	id: string | number;
	/** The whole entity for created/updated; ignored for deleted. */
	data?: T;
	/** Monotonic per entity; an event with a version ≤ the last applied one is stale and ignored. */
	version?: number;
}

export type EntityEventName = 'entity:created' | 'entity:updated' | 'entity:deleted';

export const ENTITY_EVENTS: readonly EntityEventName[] = ['entity:created', 'entity:updated', 'entity:deleted'];

export interface CollectionOptions<T> {
	/** Initial items (e.g. from a page load). */
	initial?: readonly T[];
	/** Id of an initial item. Default: `item.id`. */
	id?: (item: T) => string | number;
	/** Version of an initial item. Default: `item.version` when it is a number. */
	version?: (item: T) => number | undefined;
	/** Order of `items()`. Default: insertion order (created events append). */
	sort?: (a: T, b: T) => number;
}

/**
 * A keyed list kept from entity events. Stale events (version ≤ the highest
 * version seen for that id, deletions included) are ignored, so a late
 * `updated` cannot resurrect a deleted entity. Events without a version always
 * apply. Pure: no I/O.
 */
export class EntityCollection<T> {
	readonly name: string;
	#items = new Map<string, T>();
	#versions = new Map<string, number>();
	#sort?: (a: T, b: T) => number;

	constructor(name: string, opts: CollectionOptions<T> = {}) {
		this.name = name;
		this.#sort = opts.sort;
		const idOf = opts.id ?? ((item: T) => (item as { id: string | number }).id);
		const versionOf =
			opts.version ??
			((item: T) => {
				const v = (item as { version?: unknown }).version;
				return typeof v === 'number' ? v : undefined;
			});
		for (const item of opts.initial ?? []) {
			const id = String(idOf(item));
			this.#items.set(id, item);
			const v = versionOf(item);
			if (v !== undefined) this.#versions.set(id, v);
		}
	}

	/**
	 * Applies one event. Returns true when the list changed; false for other
	 * collections, unknown events and stale versions.
	 */
	apply(event: string, payload: EntityEventData<T>): boolean {
		if (!payload || payload.collection !== this.name || payload.id === undefined || payload.id === null) return false;
		if (event !== 'entity:created' && event !== 'entity:updated' && event !== 'entity:deleted') return false;
		const id = String(payload.id);
		const v = payload.version;
		if (typeof v === 'number') {
			const seen = this.#versions.get(id);
			if (seen !== undefined && v <= seen) return false;
			this.#versions.set(id, v);
		}
		if (event === 'entity:deleted') return this.#items.delete(id);
		if (payload.data === undefined) return false;
		this.#items.set(id, payload.data);
		return true;
	}

	get(id: string | number): T | undefined {
		return this.#items.get(String(id));
	}

	get size(): number {
		return this.#items.size;
	}

	/** The items, in `sort` order or insertion order. */
	items(): T[] {
		const list = [...this.#items.values()];
		return this.#sort ? list.sort(this.#sort) : list;
	}
}
