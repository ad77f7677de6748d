const units: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/**
 * Milliseconds of a key lifetime given the way the node takes it: a Go
 * duration string ("90s", "2m", "1h30m", "1.5s") or a number of seconds.
 * Throws on anything else.
 */
export function durationMs(ttl: string | number): number {
	if (typeof ttl === 'number') {
		if (!Number.isFinite(ttl) || ttl <= 0) throw new Error(`ttl ${ttl} is invalid: use a positive number of seconds or a duration such as "2m"`);
		return ttl * 1000;
	}
	const s = ttl.trim();
	const re = /(\d+(?:\.\d+)?)(ms|s|m|h)/gy;
	let total = 0;
	let end = 0;
	for (let m = re.exec(s); m; m = re.exec(s)) {
		total += Number(m[1]) * units[m[2]!]!;
		end = re.lastIndex;
	}
	if (s === '' || end !== s.length || total <= 0) throw new Error(`ttl "${ttl}" is invalid: use a duration such as "90s", "2m" or "1h30m"`);
	return total;
}
