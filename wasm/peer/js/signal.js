// A connection to one moss-signal server: joins the room (the mesh's
// infohash) under our id, reports peers, forwards offers and answers, and
// reconnects with back-off until stopped. Several servers per mesh work
// like trackers: the Moss object deduplicates peers by id.

const MIN_RETRY_MS = 1000;
const MAX_RETRY_MS = 30000;
/** Close codes after which retrying cannot help (bad room or id). */
const FATAL = new Set([4400]);

/** `ws://host:port` (or a URL already ending in /signal) to the join URL. */
export function joinUrl(base, room, id) {
  const u = new URL(base);
  if (!u.pathname.endsWith('/signal')) u.pathname = u.pathname.replace(/\/?$/, '/signal');
  u.searchParams.set('room', room);
  u.searchParams.set('id', id);
  return u.toString();
}

export class SignalClient {
  constructor(url, room, id, moss) {
    this.url = joinUrl(url, room, id);
    this.moss = moss;
    this.ws = null;
    this.connected = false;
    this.stopped = false;
    this.retry = MIN_RETRY_MS;
    this.timer = null;
    this.lastClose = null;
  }

  start() {
    if (this.stopped) return;
    let ws;
    try { ws = new WebSocket(this.url); } catch { this.later(); return; }
    this.ws = ws;
    ws.onopen = () => { this.connected = true; this.retry = MIN_RETRY_MS; };
    ws.onmessage = ev => this.receive(ev.data);
    ws.onclose = ev => {
      this.connected = false;
      this.lastClose = { code: ev.code, reason: ev.reason };
      if (!FATAL.has(ev.code)) this.later();
    };
    ws.onerror = () => { /* onclose follows */ };
  }

  later() {
    if (this.stopped) return;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.start(), this.retry);
    this.retry = Math.min(this.retry * 2, MAX_RETRY_MS);
  }

  receive(text) {
    let env;
    try { env = JSON.parse(text); } catch { this.moss._js.signal_junk++; return; }
    if (!env || typeof env !== 'object') { this.moss._js.signal_junk++; return; }
    if (env.type === 'peers' && Array.isArray(env.peers)) {
      for (const p of env.peers) if (typeof p === 'string') this.moss._seen(p, this);
    } else if (env.type === 'join' && typeof env.from === 'string') {
      this.moss._seen(env.from, this);
    } else if (env.type === 'leave' && typeof env.from === 'string') {
      this.moss._gone(env.from);
    } else {
      this.moss._signal(env, this);
    }
  }

  send(env) {
    if (this.ws?.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(env));
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.timer);
    try { this.ws?.close(1000); } catch { /* not open */ }
  }
}
