import { describe, expect, it } from 'vitest';
import { EntityCollection } from '../src/collection.js';

interface Todo {
	id: string;
	title: string;
	version?: number;
}

describe('EntityCollection', () => {
	it('applies created, updated and deleted in order', () => {
		const c = new EntityCollection<Todo>('todos');
		expect(c.apply('entity:created', { collection: 'todos', id: '1', data: { id: '1', title: 'a' }, version: 1 })).toBe(true);
		expect(c.apply('entity:created', { collection: 'todos', id: '2', data: { id: '2', title: 'b' }, version: 1 })).toBe(true);
		expect(c.apply('entity:updated', { collection: 'todos', id: '1', data: { id: '1', title: 'A' }, version: 2 })).toBe(true);
		expect(c.items().map((t) => t.title)).toEqual(['A', 'b']);
		expect(c.apply('entity:deleted', { collection: 'todos', id: '2', version: 2 })).toBe(true);
		expect(c.items().map((t) => t.id)).toEqual(['1']);
	});

	it('ignores stale and duplicate versions', () => {
		const c = new EntityCollection<Todo>('todos');
		c.apply('entity:created', { collection: 'todos', id: '1', data: { id: '1', title: 'v1' }, version: 1 });
		c.apply('entity:updated', { collection: 'todos', id: '1', data: { id: '1', title: 'v3' }, version: 3 });
		expect(c.apply('entity:updated', { collection: 'todos', id: '1', data: { id: '1', title: 'v2' }, version: 2 })).toBe(false);
		expect(c.apply('entity:updated', { collection: 'todos', id: '1', data: { id: '1', title: 'v3bis' }, version: 3 })).toBe(false);
		expect(c.get('1')?.title).toBe('v3');
	});

	it('does not resurrect a deleted entity with a late update', () => {
		const c = new EntityCollection<Todo>('todos');
		c.apply('entity:created', { collection: 'todos', id: '1', data: { id: '1', title: 'x' }, version: 1 });
		c.apply('entity:deleted', { collection: 'todos', id: '1', version: 3 });
		expect(c.apply('entity:updated', { collection: 'todos', id: '1', data: { id: '1', title: 'late' }, version: 2 })).toBe(false);
		expect(c.size).toBe(0);
		// A newer re-creation is fine.
		expect(c.apply('entity:created', { collection: 'todos', id: '1', data: { id: '1', title: 'again' }, version: 4 })).toBe(true);
	});

	it('seeds from initial items with their versions', () => {
		const c = new EntityCollection<Todo>('todos', { initial: [{ id: '1', title: 'loaded', version: 5 }] });
		expect(c.apply('entity:updated', { collection: 'todos', id: '1', data: { id: '1', title: 'old' }, version: 4 })).toBe(false);
		expect(c.apply('entity:updated', { collection: 'todos', id: '1', data: { id: '1', title: 'new' }, version: 6 })).toBe(true);
		expect(c.items()).toEqual([{ id: '1', title: 'new' }]);
	});

	it('applies unversioned events always, matches numeric and string ids', () => {
		const c = new EntityCollection<{ id: number; n: number }>('n');
		c.apply('entity:created', { collection: 'n', id: 1, data: { id: 1, n: 1 } });
		c.apply('entity:updated', { collection: 'n', id: '1', data: { id: 1, n: 2 } });
		expect(c.get(1)).toEqual({ id: 1, n: 2 });
	});

	it('ignores other collections, unknown events and malformed payloads', () => {
		const c = new EntityCollection<Todo>('todos');
		expect(c.apply('entity:created', { collection: 'users', id: '1', data: { id: '1', title: 'x' } })).toBe(false);
		expect(c.apply('entity:exploded', { collection: 'todos', id: '1', data: { id: '1', title: 'x' } })).toBe(false);
		expect(c.apply('entity:created', { collection: 'todos', id: '1' })).toBe(false);
		expect(c.apply('entity:created', null as never)).toBe(false);
		expect(c.size).toBe(0);
	});

	it('sorts with a comparator', () => {
		const c = new EntityCollection<Todo>('todos', { sort: (a, b) => a.title.localeCompare(b.title) });
		c.apply('entity:created', { collection: 'todos', id: '1', data: { id: '1', title: 'b' } });
		c.apply('entity:created', { collection: 'todos', id: '2', data: { id: '2', title: 'a' } });
		expect(c.items().map((t) => t.title)).toEqual(['a', 'b']);
	});
});
