/** A minimal typed event emitter: `on` returns its own unsubscribe function. */
export declare class Emitter<T extends {
    [K in keyof T]: (...args: never[]) => void;
}> {
    #private;
    on<K extends keyof T>(name: K, fn: T[K]): () => void;
    emit<K extends keyof T>(name: K, ...args: Parameters<T[K]>): void;
    has(name: keyof T): boolean;
    clear(): void;
}
