/** A minimal typed event emitter: `on` returns its own unsubscribe function. */
export class Emitter<T extends { [K in keyof T]: (...args: never[]) => void }> {
	#listeners = new Map<keyof T, Set<T[keyof T]>>();

	on<K extends keyof T>(name: K, fn: T[K]): () => void {
		let set = this.#listeners.get(name);
		if (!set) this.#listeners.set(name, (set = new Set()));
		set.add(fn);
		return () => {
			set.delete(fn);
		};
	}

	emit<K extends keyof T>(name: K, ...args: Parameters<T[K]>): void {
		const set = this.#listeners.get(name);
		if (!set) return;
		for (const fn of [...set]) {
			try {
				(fn as (...a: Parameters<T[K]>) => void)(...args);
			} catch (err) {
				// A listener's bug must not break the client; surface it asynchronously.
				queueMicrotask(() => {
					throw err;
				});
			}
		}
	}

	has(name: keyof T): boolean {
		return (this.#listeners.get(name)?.size ?? 0) > 0;
	}

	clear(): void {
		this.#listeners.clear();
	}
}
