// A chat back-end for roomcast in Node.js, with nothing but the `nats`
// package: the same back-end as examples/go-backend, on the public NATS
// subjects (README, "NATS subject API"), to show they are language-neutral.
//
//   NATS_URL=127.0.0.1:4222 LISTEN=127.0.0.1:3001 PUBLIC_URL=ws://127.0.0.1:8080 node server.mjs
//   curl -d '{"name":"ada"}' localhost:3001/connect   # → {"url":"ws://…/_/connect/…"}
import http from 'node:http';
import { randomBytes } from 'node:crypto';
import { connect, headers } from 'nats';

const NATS_URL = process.env.NATS_URL ?? '127.0.0.1:4222';
const [HOST, PORT] = (process.env.LISTEN ?? '127.0.0.1:3001').split(':');
const PUBLIC_URL = (process.env.PUBLIC_URL ?? 'ws://127.0.0.1:8080').replace(/^http/, 'ws');
const ROOM = 'chat.lobby';

const nc = await connect({ servers: NATS_URL, name: 'roomcast node-backend example', maxReconnectAttempts: -1 });
const enc = (v) => new TextEncoder().encode(JSON.stringify(v));
const dec = (b) => { try { return JSON.parse(new TextDecoder().decode(b)); } catch { return undefined; } };
const hdrs = (kv) => { const h = headers(); for (const [k, v] of Object.entries(kv)) h.set(k, v); return h; };
const fail = (code, message) => Object.assign(new Error(message), { code });

// The messages, in memory: stored and broadcast to the room as the sender.
const messages = [];
let nextId = 0;
function post(user, name, text, from) {
  text = String(text ?? '').trim();
  if (!text || text.length > 2000) throw fail('bad_request', 'text must be 1–2000 characters');
  const m = { id: ++nextId, user, name, text, at: Date.now() };
  messages.push(m);
  if (messages.length > 1000) messages.shift();
  nc.publish(`rc.room.${ROOM}`, enc(m), { headers: hdrs(from ? { 'Rc-Event': 'chat', 'Rc-From': from } : { 'Rc-Event': 'chat' }) });
  return m;
}

// Per-request sockets: session id → { open, queue (sent before connect), sub, timer }.
const sockets = new Map();
function send(id, event, data) {
  const s = sockets.get(id);
  if (s && !s.open) return void s.queue.push([event, data]);
  nc.publish(`rc.session.${id}`, enc(data), { headers: hdrs({ 'Rc-Event': event }) });
}
function opened(id) {
  const s = sockets.get(id);
  if (!s || s.open) return;
  s.open = true;
  clearTimeout(s.timer);
  for (const [event, data] of s.queue.splice(0)) send(id, event, data);
  console.log(`connected session=${id} user=${s.user}`);
}
function closed(id, code, reason) {
  const s = sockets.get(id);
  if (!s) return;
  sockets.delete(id);
  s.sub.unsubscribe();
  clearTimeout(s.timer);
  console.log(`closed session=${id} code=${code} reason=${JSON.stringify(reason)}`);
}
nc.subscribe('rc.events.connect', { callback: (_, m) => dec(m.data)?.session && opened(dec(m.data).session) });
nc.subscribe('rc.events.close', { callback: (_, m) => { const ev = dec(m.data); if (ev?.session) closed(ev.session, ev.code, ev.reason); } });

async function use(name) {
  const user = String(name).toLowerCase().replace(/[^a-z0-9]/g, '').slice(0, 64);
  if (!user) throw fail('bad_request', 'name: use letters and digits');
  const id = randomBytes(12).toString('base64url');
  const sub = nc.subscribe(`rc.send.${id}`, {
    callback: (_, m) => {
      opened(id); // a message proves the connection, even before its connect event
      if (m.headers?.get('Rc-Event') !== 'chat') return;
      try { post(user, name, dec(m.data)?.text, id); } catch (e) { send(id, 'chat:error', e.message); }
    },
  });
  sockets.set(id, { user, open: false, queue: [], sub });
  send(id, 'message', 'Connected!'); // queued until the browser connects
  // Minted after the subscription, on the same connection: nothing the browser sends is missed.
  const minted = dec((await nc.request('rc.keys.mint', enc({ user, meta: { name }, rooms: [ROOM], session: id }), { timeout: 5000 })).data);
  if (!minted?.url) {
    closed(id, 1011, 'no key');
    throw fail('unavailable', minted?.error?.message ?? 'mint failed');
  }
  // Never redeemed: released 2 s after the key expires (close code 4001).
  sockets.get(id).timer = setTimeout(() => closed(id, 4001, 'key expired'), Date.parse(minted.expires_at) - Date.now() + 2000);
  return new URL(minted.url, PUBLIC_URL).toString();
}

// rpc methods, shared by replicas in a queue group; errors go back with Rc-Error.
function serve(method, fn) {
  nc.subscribe(`rc.rpc.${method}`, {
    queue: 'roomcast-rpc',
    callback: (_, m) => {
      try {
        m.respond(enc(fn(dec(m.data), m.headers)));
      } catch (e) {
        m.respond(new TextEncoder().encode(e.message), { headers: hdrs({ 'Rc-Error': e.code ?? 'unavailable' }) });
      }
    },
  });
}
serve('chat.post', (data, h) => post(h.get('Rc-User'), dec(new TextEncoder().encode(h.get('Rc-Meta') || '{}'))?.name ?? '', data?.text));
serve('chat.history', () => messages.slice(-50));

const server = http.createServer(async (req, res) => {
  if (req.method !== 'POST' || req.url !== '/connect') return void res.writeHead(404).end();
  let body = '';
  for await (const chunk of req) body += chunk;
  try {
    const url = await use(dec(new TextEncoder().encode(body))?.name ?? '');
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ url }));
  } catch (e) {
    res.writeHead(e.code === 'bad_request' ? 400 : 503, { 'content-type': 'application/json' }).end(JSON.stringify({ error: e.message }));
  }
});
server.listen(Number(PORT), HOST, () => console.log(`node-backend listening addr=${HOST}:${server.address().port}`));
for (const sig of ['SIGTERM', 'SIGINT']) process.on(sig, () => { server.close(); void nc.drain(); });
