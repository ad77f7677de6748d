/**
 * Time source for timers, injectable so that tests are deterministic.
 * Handles are opaque.
 */
export interface Clock {
    now(): number;
    setTimeout(fn: () => void, ms: number): unknown;
    clearTimeout(handle: unknown): void;
}
export declare const systemClock: Clock;
