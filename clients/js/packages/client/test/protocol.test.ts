import { describe, expect, it } from 'vitest';
import { encode, isValidRoom, parseFrame } from '../src/protocol.js';

describe('parseFrame', () => {
	it('parses a single message', () => {
		expect(parseFrame('{"type":"pong"}')).toEqual([{ type: 'pong' }]);
	});

	it('splits a batched frame on \\n, in order', () => {
		const frame = [
			'{"type":"event","room":"a","event":"chat","data":1}',
			'{"type":"event","room":"a","event":"chat","data":2}',
			'{"type":"ack","id":7}'
		].join('\n');
		const msgs = parseFrame(frame);
		expect(msgs.map((m) => m.type)).toEqual(['event', 'event', 'ack']);
		expect(msgs.map((m) => (m as { data?: number }).data)).toEqual([1, 2, undefined]);
	});

	it('skips empty lines, a trailing newline and \\r\\n endings', () => {
		expect(parseFrame('\n{"type":"pong"}\r\n\n{"type":"ack","id":1}\n')).toEqual([{ type: 'pong' }, { type: 'ack', id: 1 }]);
		expect(parseFrame('')).toEqual([]);
		expect(parseFrame('\n\n')).toEqual([]);
	});

	it('keeps \\n inside JSON strings intact (escaped on the wire)', () => {
		const msg = { type: 'event', event: 'chat', data: 'line1\nline2' };
		expect(parseFrame(JSON.stringify(msg) + '\n' + JSON.stringify(msg))).toEqual([msg, msg]);
	});

	it.each([
		['not json', 'hello'],
		['a number', '42'],
		['null', 'null'],
		['an array', '[1,2]'],
		['no type', '{"id":1}'],
		['a non-string type', '{"type":5}'],
		['truncated', '{"type":"ev']
	])('reports %s and keeps the rest of the batch', (_name, bad) => {
		const bads: string[] = [];
		const msgs = parseFrame(`{"type":"pong"}\n${bad}\n{"type":"ack","id":2}`, (line) => bads.push(line));
		expect(msgs).toEqual([{ type: 'pong' }, { type: 'ack', id: 2 }]);
		expect(bads).toEqual([bad]);
	});
});

describe('encode', () => {
	it('writes one JSON object per frame', () => {
		expect(JSON.parse(encode({ type: 'join', id: 1, room: 'lobby', meta: { n: 1 } }))).toEqual({
			type: 'join',
			id: 1,
			room: 'lobby',
			meta: { n: 1 }
		});
	});
});

describe('isValidRoom', () => {
	it.each(['lobby', 'chat.general', 'a:b@c=d_e-f', 'x'.repeat(128), 'org.42.team-1'])('accepts %s', (r) => {
		expect(isValidRoom(r)).toBe(true);
	});
	it.each(['', 'a..b', '.a', 'a.', 'a b', 'a*', 'a>', 'x'.repeat(129), 'é'])('rejects %j', (r) => {
		expect(isValidRoom(r)).toBe(false);
	});
});
