export const DEFAULT_BACKOFF = { base: 500, cap: 20_000 };
/**
 * Full-jitter exponential backoff: a uniform random delay in
 * [0, min(cap, base·2^attempt)). Unlike "equal jitter" (half fixed, half
 * random), full jitter spreads clients over the whole window, so the clients
 * of a node that died do not come back in a herd.
 *
 * `random` returns a number in [0, 1) (Math.random by default); attempt 0 is the
 * first retry.
 */
export function fullJitter(attempt, opts = {}, random = Math.random) {
    const base = opts.base ?? DEFAULT_BACKOFF.base;
    const cap = opts.cap ?? DEFAULT_BACKOFF.cap;
    // 2^attempt overflows to Infinity past ~1023; min() keeps it at cap.
    const window = Math.min(cap, base * 2 ** Math.max(0, attempt));
    return Math.floor(random() * window);
}
