import { ENTITY_EVENTS, EntityCollection } from '../collection.js';
/**
 * A reactive list kept from `entity:created|updated|deleted` events
 * (`{collection, id, data, version}`), ignoring stale versions. Read `items`
 * in templates.
 */
export class Collection {
    /** The current items (replaced on each change). */
    items = $state.raw([]);
    #core;
    #offs = [];
    constructor(source, collection, opts = {}) {
        this.#core = new EntityCollection(collection, opts);
        this.items = this.#core.items();
        const client = 'client' in source ? source.client : source;
        for (const name of ENTITY_EVENTS) {
            this.#offs.push(client.on(name, (data) => this.apply(name, data)));
        }
    }
    /** Applies one event by hand (e.g. from your own transport). Returns true when the list changed. */
    apply(event, payload) {
        const changed = this.#core.apply(event, payload);
        if (changed)
            this.items = this.#core.items();
        return changed;
    }
    get(id) {
        return this.#core.get(id);
    }
    destroy() {
        this.#offs.forEach((f) => f());
        this.#offs = [];
    }
}
/** Creates a {@link Collection} listening on `source`'s entity events for `collection`. */
export function createCollection(source, collection, opts = {}) {
    return new Collection(source, collection, opts);
}
