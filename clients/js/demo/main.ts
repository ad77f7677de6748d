/**
 * The demo page served by roomcast-node at "/": pick a name and a room, chat,
 * see who is online. Built into pkg/demo/dist by `npm run build:demo`.
 *
 * Connection: POST /_/demo/key {"user": name} → {"url": "/_/connect/<key>"}
 * (a fresh one-time key per attempt); if that endpoint is missing (404) it
 * falls back to the public continuous route /_/demo/ws. `?shared=1` shares
 * one socket between tabs through the SharedWorker.
 */
import { RoomcastClient, type RoomcastError, type StateInfo } from '../packages/client/src/index.js';
import { demoMint } from './mint.js';

type Events = { chat: { text: string; name: string } };
type Meta = { name: string };

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;
const nameIn = $<HTMLInputElement>('name');
const roomIn = $<HTMLInputElement>('room');
const textIn = $<HTMLInputElement>('text');
const sendBtn = $<HTMLButtonElement>('send');
const log = $<HTMLUListElement>('log');
const people = $<HTMLUListElement>('people');

const params = new URLSearchParams(location.search);
nameIn.value = params.get('name') ?? localStorage.getItem('roomcast-demo-name') ?? `guest-${Math.floor(1000 + Math.random() * 9000)}`;
roomIn.value = params.get('room') ?? (location.hash.slice(1) || 'lobby');

let client: RoomcastClient<Events, Meta> | undefined;
/** The name the current client's key was minted for. */
let clientName = '';
let room = '';

function line(parts: Array<[string, string]>): void {
	const li = document.createElement('li');
	for (const [cls, text] of parts) {
		const span = document.createElement('span');
		span.className = cls;
		span.textContent = text;
		li.append(span);
	}
	const stick = log.scrollTop + log.clientHeight >= log.scrollHeight - 8;
	log.append(li);
	while (log.children.length > 500) log.firstElementChild?.remove();
	if (stick) log.scrollTop = log.scrollHeight;
}

const time = () => new Date().toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', second: '2-digit' });
const sys = (text: string) => line([['at', time()], ['sys', text]]);

function renderPeople(): void {
	if (!client) return;
	const me = client.session;
	people.replaceChildren(
		...client.sessions(room).map((s) => {
			const li = document.createElement('li');
			li.textContent = s.meta?.name || s.user || s.session;
			if (s.session === me) li.className = 'me';
			const small = document.createElement('small');
			small.textContent = s.user && s.user !== s.meta?.name ? ` (${s.user})` : '';
			li.append(small);
			return li;
		})
	);
	$('count').textContent = String(client.count(room));
}

function renderState(info: StateInfo): void {
	$('status').className = info.state;
	let text: string = info.state;
	if (info.state === 'reconnecting' && info.delay !== undefined) text += ` in ${(info.delay / 1000).toFixed(1)} s`;
	$('state').textContent = text;
	const w = client?.welcome;
	$('node').textContent = info.state === 'open' && w ? `node ${w.node} · session ${w.session.slice(0, 8)}${client?.shared ? ' · shared' : ''}` : '';
	const open = info.state === 'open';
	textIn.disabled = sendBtn.disabled = !open;
	if (info.state === 'reconnecting') sys(`connection lost${info.code ? ` (${info.code})` : ''}, retrying`);
	if (info.state === 'connecting' && info.code) sys(`node closed the connection (${info.code}${info.reason ? `: ${info.reason}` : ''}), reconnecting at once`);
	if (info.state === 'closed' && info.error) sys(`closed: ${info.error.message}`);
}

function connect(name: string): RoomcastClient<Events, Meta> {
	const c = new RoomcastClient<Events, Meta>({
		mint: demoMint(() => name),
		...(params.has('shared')
			? { sharedWorker: () => new SharedWorker(new URL('worker.js', location.href), { name: 'roomcast-demo' }) }
			: {})
	});
	c.listen('state', renderState);
	c.listen('welcome', (w) => sys(`connected to node ${w.node}`));
	c.listen('presence', (p) => p.room === room && renderPeople());
	c.listen('session:connected', (m) => m.room === room && sys(`${m.meta?.name || m.user} joined`));
	c.listen('session:disconnected', (m) => m.room === room && sys(`${m.meta?.name || m.user} left`));
	c.listen('error', (e: RoomcastError) => sys(`error: ${e.code}: ${e.message}`));
	c.on('chat', (msg, ctx) => {
		if (ctx.room !== room) return;
		line([
			['at', time()],
			['who', String(msg?.name ?? ctx.from ?? 'server')],
			['text', String(msg?.text ?? '')]
		]);
	});
	return c;
}

$<HTMLFormElement>('join').addEventListener('submit', (ev) => {
	ev.preventDefault();
	const name = nameIn.value.trim() || 'guest';
	const next = roomIn.value.trim() || 'lobby';
	localStorage.setItem('roomcast-demo-name', name);
	history.replaceState(null, '', `${location.pathname}${location.search}#${next}`);
	// A new name needs a new key (the user is in its claims): start over.
	if (client && clientName !== name) {
		client.destroy();
		client = undefined;
		room = '';
	}
	if (!client) {
		client = connect(name);
		clientName = name;
	}
	if (room && room !== next) void client.leave(room);
	room = next;
	$('title').textContent = `#${room}`;
	people.replaceChildren();
	client.join(room, { name }).then(
		() => sys(`joined #${room} as ${name}`),
		(e: RoomcastError) => sys(`could not join #${room}: ${e.message}`)
	);
});

$<HTMLFormElement>('say').addEventListener('submit', (ev) => {
	ev.preventDefault();
	const text = textIn.value.trim();
	if (!text || !client || !room) return;
	textIn.value = '';
	client.publish(room, 'chat', { text, name: nameIn.value.trim() }).catch((e: RoomcastError) => sys(`not sent: ${e.message}`));
});

if (params.has('autojoin')) $<HTMLFormElement>('join').requestSubmit();
