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
export declare const ENTITY_EVENTS: readonly EntityEventName[];
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
export declare class EntityCollection<T> {
    #private;
    readonly name: string;
    constructor(name: string, opts?: CollectionOptions<T>);
    /**
     * Applies one event. Returns true when the list changed; false for other
     * collections, unknown events and stale versions.
     */
    apply(event: string, payload: EntityEventData<T>): boolean;
    get(id: string | number): T | undefined;
    get size(): number;
    /** The items, in `sort` order or insertion order. */
    items(): T[];
}
