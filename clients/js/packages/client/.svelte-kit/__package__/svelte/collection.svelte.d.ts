import type { RoomcastClient } from '../client.js';
import { type CollectionOptions, type EntityEventData } from '../collection.js';
import type { EventMap } from '../protocol.js';
import type { Roomcast } from './roomcast.svelte.js';
/**
 * A reactive list kept from `entity:created|updated|deleted` events
 * (`{collection, id, data, version}`), ignoring stale versions. Read `items`
 * in templates.
 */
export declare class Collection<T> {
    #private;
    /** The current items (replaced on each change). */
    items: T[];
    constructor(source: Roomcast<EventMap, unknown> | RoomcastClient<EventMap, unknown>, collection: string, opts?: CollectionOptions<T>);
    /** Applies one event by hand (e.g. from your own transport). Returns true when the list changed. */
    apply(event: string, payload: EntityEventData<T>): boolean;
    get(id: string | number): T | undefined;
    destroy(): void;
}
/** Creates a {@link Collection} listening on `source`'s entity events for `collection`. */
export declare function createCollection<T>(source: Roomcast<EventMap, unknown> | RoomcastClient<EventMap, unknown>, collection: string, opts?: CollectionOptions<T>): Collection<T>;
