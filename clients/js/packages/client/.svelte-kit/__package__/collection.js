export const ENTITY_EVENTS = ['entity:created', 'entity:updated', 'entity:deleted'];
/**
 * A keyed list kept from entity events. Stale events (version ≤ the highest
 * version seen for that id, deletions included) are ignored, so a late
 * `updated` cannot resurrect a deleted entity. Events without a version always
 * apply. Pure: no I/O.
 */
export class EntityCollection {
    name;
    #items = new Map();
    #versions = new Map();
    #sort;
    constructor(name, opts = {}) {
        this.name = name;
        this.#sort = opts.sort;
        const idOf = opts.id ?? ((item) => item.id);
        const versionOf = opts.version ??
            ((item) => {
                const v = item.version;
                return typeof v === 'number' ? v : undefined;
            });
        for (const item of opts.initial ?? []) {
            const id = String(idOf(item));
            this.#items.set(id, item);
            const v = versionOf(item);
            if (v !== undefined)
                this.#versions.set(id, v);
        }
    }
    /**
     * Applies one event. Returns true when the list changed; false for other
     * collections, unknown events and stale versions.
     */
    apply(event, payload) {
        if (!payload || payload.collection !== this.name || payload.id === undefined || payload.id === null)
            return false;
        if (event !== 'entity:created' && event !== 'entity:updated' && event !== 'entity:deleted')
            return false;
        const id = String(payload.id);
        const v = payload.version;
        if (typeof v === 'number') {
            const seen = this.#versions.get(id);
            if (seen !== undefined && v <= seen)
                return false;
            this.#versions.set(id, v);
        }
        if (event === 'entity:deleted')
            return this.#items.delete(id);
        if (payload.data === undefined)
            return false;
        this.#items.set(id, payload.data);
        return true;
    }
    get(id) {
        return this.#items.get(String(id));
    }
    get size() {
        return this.#items.size;
    }
    /** The items, in `sort` order or insertion order. */
    items() {
        const list = [...this.#items.values()];
        return this.#sort ? list.sort(this.#sort) : list;
    }
}
