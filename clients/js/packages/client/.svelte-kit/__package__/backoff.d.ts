/** Reconnect backoff settings, in milliseconds. */
export interface BackoffOptions {
    /** First window: attempt 0 waits a uniform random time in [0, base). Default 500. */
    base?: number;
    /** Largest window: no wait is ever longer. Default 20 000. */
    cap?: number;
}
export declare const DEFAULT_BACKOFF: Required<BackoffOptions>;
/**
 * Full-jitter exponential backoff: a uniform random delay in
 * [0, min(cap, base·2^attempt)). Unlike "equal jitter" (half fixed, half
 * random), full jitter spreads clients over the whole window, so the clients
 * of a node that died do not come back in a herd.
 *
 * `random` returns a number in [0, 1) (Math.random by default); attempt 0 is the
 * first retry.
 */
export declare function fullJitter(attempt: number, opts?: BackoffOptions, random?: () => number): number;
