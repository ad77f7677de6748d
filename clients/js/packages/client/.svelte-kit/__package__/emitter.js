/** A minimal typed event emitter: `on` returns its own unsubscribe function. */
export class Emitter {
    #listeners = new Map();
    on(name, fn) {
        let set = this.#listeners.get(name);
        if (!set)
            this.#listeners.set(name, (set = new Set()));
        set.add(fn);
        return () => {
            set.delete(fn);
        };
    }
    emit(name, ...args) {
        const set = this.#listeners.get(name);
        if (!set)
            return;
        for (const fn of [...set]) {
            try {
                fn(...args);
            }
            catch (err) {
                // A listener's bug must not break the client; surface it asynchronously.
                queueMicrotask(() => {
                    throw err;
                });
            }
        }
    }
    has(name) {
        return (this.#listeners.get(name)?.size ?? 0) > 0;
    }
    clear() {
        this.#listeners.clear();
    }
}
