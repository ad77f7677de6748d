import { describe, expect, it } from 'vitest';
import { PresenceTracker } from '../src/presence.js';

const s = (session: string, at: number, user = session.toUpperCase()) => ({ session, user, meta: { n: session }, connected_at: at });

describe('PresenceTracker', () => {
	it('replaces the list on session:list, sorted by connected_at', () => {
		const t = new PresenceTracker();
		expect(t.apply({ type: 'session:list', room: 'r', sessions: [s('b', 20), s('a', 10), s('c', 20)] })).toBe('r');
		expect(t.sessions('r').map((x) => x.session)).toEqual(['a', 'b', 'c']);
		expect(t.count('r')).toBe(3);
		t.apply({ type: 'session:list', room: 'r', sessions: [s('z', 1)] });
		expect(t.sessions('r').map((x) => x.session)).toEqual(['z']);
	});

	it('adds on connected, removes on disconnected, and takes the node count', () => {
		const t = new PresenceTracker();
		t.apply({ type: 'session:list', room: 'r', sessions: [s('a', 1)] });
		t.apply({ type: 'session:connected', room: 'r', session: 'b', user: 'B', meta: {}, count: 2, connected_at: 5 });
		expect(t.sessions('r').map((x) => x.session)).toEqual(['a', 'b']);
		expect(t.sessions('r')[1]!.connected_at).toBe(5);
		expect(t.count('r')).toBe(2);
		t.apply({ type: 'session:disconnected', room: 'r', session: 'a', user: 'A', meta: {}, count: 1 });
		expect(t.sessions('r').map((x) => x.session)).toEqual(['b']);
		expect(t.count('r')).toBe(1);
	});

	it('updates meta on session:updated, keeping connected_at', () => {
		const t = new PresenceTracker<{ n: string; typing?: boolean }>();
		t.apply({ type: 'session:list', room: 'r', sessions: [s('a', 7)] });
		t.apply({ type: 'session:updated', room: 'r', session: 'a', user: 'A', meta: { n: 'a', typing: true }, count: 1 });
		expect(t.sessions('r')).toEqual([{ session: 'a', user: 'A', meta: { n: 'a', typing: true }, connected_at: 7 }]);
	});

	it('is idempotent for duplicate connects and unknown disconnects', () => {
		const t = new PresenceTracker();
		t.apply({ type: 'session:list', room: 'r', sessions: [] });
		t.apply({ type: 'session:connected', room: 'r', session: 'a', user: 'A', meta: {}, count: 1, connected_at: 1 });
		t.apply({ type: 'session:connected', room: 'r', session: 'a', user: 'A', meta: {}, count: 1, connected_at: 1 });
		t.apply({ type: 'session:disconnected', room: 'r', session: 'zz', user: 'Z', meta: {}, count: 1 });
		expect(t.sessions('r')).toHaveLength(1);
	});

	it('keeps rooms apart and forgets a left room', () => {
		const t = new PresenceTracker();
		t.apply({ type: 'session:list', room: 'a', sessions: [s('x', 1)] });
		t.apply({ type: 'session:list', room: 'b', sessions: [s('y', 1), s('z', 2)] });
		expect(t.count('a')).toBe(1);
		expect(t.count('b')).toBe(2);
		t.delete('a');
		expect(t.has('a')).toBe(false);
		expect(t.sessions('a')).toEqual([]);
		expect(t.rooms()).toEqual(['b']);
	});

	it('trusts the node count for count-only rooms', () => {
		const t = new PresenceTracker();
		t.apply({ type: 'session:connected', room: 'big', session: 'a', user: 'A', meta: {}, count: 5000, connected_at: 1 });
		expect(t.count('big')).toBe(5000);
		expect(t.sessions('big')).toHaveLength(1);
	});

	it('ignores non-presence messages', () => {
		const t = new PresenceTracker();
		expect(t.apply({ type: 'pong' })).toBeUndefined();
		expect(t.apply({ type: 'event', room: 'r', event: 'x', data: 1 })).toBeUndefined();
		expect(t.rooms()).toEqual([]);
	});
});
