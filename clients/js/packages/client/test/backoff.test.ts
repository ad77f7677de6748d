import { describe, expect, it } from 'vitest';
import { fullJitter } from '../src/backoff.js';

describe('fullJitter', () => {
	it('is 0 when random() is 0 (full jitter reaches down to zero)', () => {
		for (let a = 0; a < 10; a++) expect(fullJitter(a, {}, () => 0)).toBe(0);
	});

	it('stays below min(cap, base·2^attempt)', () => {
		const almost1 = () => 0.999999;
		expect(fullJitter(0, {}, almost1)).toBe(499);
		expect(fullJitter(1, {}, almost1)).toBe(999);
		expect(fullJitter(2, {}, almost1)).toBe(1999);
		expect(fullJitter(5, {}, almost1)).toBe(15999);
		expect(fullJitter(6, {}, almost1)).toBe(19999); // 32 000 capped at 20 000
	});

	it('is capped at 20 s by default, even for huge attempts', () => {
		for (const a of [6, 10, 50, 1023, 1024, 5000, Number.MAX_SAFE_INTEGER]) {
			const d = fullJitter(a, {}, () => 0.999999);
			expect(d).toBeLessThan(20_000);
			expect(Number.isFinite(d)).toBe(true);
		}
	});

	it('spreads uniformly over the window (not equal jitter)', () => {
		// Equal jitter would never go below half the window.
		expect(fullJitter(4, {}, () => 0.1)).toBe(800);
		expect(fullJitter(4, {}, () => 0.5)).toBe(4000);
	});

	it('honours custom base and cap', () => {
		expect(fullJitter(0, { base: 100, cap: 1000 }, () => 0.5)).toBe(50);
		expect(fullJitter(3, { base: 100, cap: 1000 }, () => 0.5)).toBe(400);
		expect(fullJitter(9, { base: 100, cap: 1000 }, () => 0.5)).toBe(500);
	});

	it('stays within bounds for random samples', () => {
		let seed = 42;
		const rnd = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
		for (let a = 0; a < 12; a++) {
			const window = Math.min(20_000, 500 * 2 ** a);
			for (let i = 0; i < 200; i++) {
				const d = fullJitter(a, {}, rnd);
				expect(d).toBeGreaterThanOrEqual(0);
				expect(d).toBeLessThan(window);
			}
		}
	});

	it('treats a negative attempt as the first', () => {
		expect(fullJitter(-3, {}, () => 0.999999)).toBe(499);
	});
});
