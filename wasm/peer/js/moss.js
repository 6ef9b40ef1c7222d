// Moss in the browser: the wasm node (../pkg, built from moss-mesh) plus
// what only a page can do: RTCPeerConnections, one unordered unreliable
// DataChannel per peer, and signaling over moss-signal's WebSocket
// envelope {type, from, to, data}. See moss.d.ts for the API.
import init, { MossNode } from '../pkg/moss_wasm_peer.js';
import { SignalClient } from './signal.js';
import { Link } from './link.js';
import { loadIdentity, saveIdentity } from './identity.js';

/** Re-offers to a peer still in the room after its link failed: the first wait (ms). */
const RETRY_MIN_MS = 2000;
/** The longest wait between re-offers (ms). */
const RETRY_MAX_MS = 60000;
/** Failed links in a row after which a peer is offered again only when the room names it anew. */
const MAX_ATTEMPTS = 8;
/** Most room members remembered for re-offers. */
const MAX_MEMBERS = 1024;

/** An error of a Moss call; `code` is the C ABI's MOSS_ERR_* value. */
export class MossError extends Error {
  constructor(code, message) {
    super(message);
    this.name = 'MossError';
    this.code = code;
  }
}

/** Rethrows what the wasm node threw as a MossError. */
function wrap(e) {
  if (e && typeof e === 'object' && typeof e.code === 'number') {
    const err = new MossError(e.code, e.message);
    e.free?.();
    return err;
  }
  return e;
}

function hexToBytes(s) {
  if (!/^([0-9a-fA-F]{2})*$/.test(s)) throw new MossError(-14, 'psk must be 32 bytes or 64 hex digits');
  return Uint8Array.from(s.match(/../g) ?? [], h => parseInt(h, 16));
}

/** Reports an exception of an application callback without breaking the node. */
function report(e) {
  if (typeof reportError === 'function') reportError(e); else console.error(e);
}

let loading;
/** Loads and instantiates the wasm module once per page. */
function load(wasm) {
  loading ??= init(wasm === undefined ? undefined : { module_or_path: wasm });
  return loading;
}

/** A Moss peer in the page. Create with `Moss.create`. */
export class Moss {
  /**
   * Joins mesh `meshId` through the signal servers `signal` (ws:// or
   * wss:// base URLs). Resolves once the node runs; peers arrive later
   * (`on('peerjoin')`). Throws a MossError (-8 config, -14 psk size).
   */
  static async create(opts) {
    if (!opts || typeof opts.meshId !== 'string') throw new MossError(-8, 'meshId is required');
    const signal = opts.signal ?? [];
    if (!Array.isArray(signal)) throw new MossError(-14, 'signal must be a list of URLs');
    for (const u of signal) {
      let url;
      try { url = new URL(u); } catch { throw new MossError(-14, `bad signal URL: ${u}`); }
      if (url.protocol !== 'ws:' && url.protocol !== 'wss:') throw new MossError(-14, `signal URL must be ws:// or wss://: ${u}`);
    }
    await load(opts.wasm);
    let psk = opts.psk ?? null;
    if (typeof psk === 'string') psk = hexToBytes(psk);
    const config = opts.config == null ? null : (typeof opts.config === 'string' ? opts.config : JSON.stringify(opts.config));
    const key = opts.persistIdentity ? `${opts.persistIdentity === true ? 'default' : opts.persistIdentity}` : null;
    const seed = key ? await loadIdentity(key) : null;
    let node;
    try { node = new MossNode(opts.meshId, psk, config, seed); } catch (e) { throw wrap(e); }
    if (key && !seed) await saveIdentity(key, node.identitySeed());
    return new Moss(node, opts);
  }

  constructor(node, opts) {
    this._node = node;
    this._id = node.peerId();
    this._room = opts.room ?? node.room();
    this._ice = opts.iceServers ?? [];
    this._links = new Map(); // remote id -> Link
    this._byChannel = new Map(); // channel id -> Link
    this._nextChannel = 1;
    this._subs = new Map(); // topic -> Set(cb)
    this._handlers = new Map(); // event -> Set(cb)
    this._timer = null;
    this._closed = false;
    this._js = { signal_junk: 0, send_dropped: 0, links_failed: 0, links_retried: 0 };
    this._members = new Map(); // remote id we offer to -> {signal, failures, timer}
    this._signals = (opts.signal ?? []).map(url => new SignalClient(url, this._room, this._id, this));
    this._signals.forEach(s => s.start());
    this._pump();
  }

  /** This peer's id: its public key in hex. */
  get id() { return this._id; }
  /** The signaling room: the mesh's infohash in hex. */
  get room() { return this._room; }

  /** Calls `cb({topic, from, data, hops})` for each message on `topic`; returns an unsubscribe function. */
  subscribe(topic, cb) {
    this._live();
    try { this._node.subscribe(topic); } catch (e) { throw wrap(e); }
    let set = this._subs.get(topic);
    if (!set) this._subs.set(topic, set = new Set());
    set.add(cb);
    this._pump();
    return () => {
      set.delete(cb);
      if (set.size === 0 && this._subs.get(topic) === set && !this._closed) {
        this._subs.delete(topic);
        this._node.unsubscribe(topic);
        this._pump();
      }
    };
  }

  /** Publishes `data` (bytes or a string, UTF-8) on `topic`; returns the message id in hex. Throws a MossError (-4, -5, -6). */
  publish(topic, data) {
    this._live();
    const bytes = typeof data === 'string' ? new TextEncoder().encode(data) : data;
    let id;
    try { id = this._node.publish(topic, bytes); } catch (e) { throw wrap(e); }
    this._pump();
    return id;
  }

  /** Established peers: `[{peer, channel, topics, outbound}]`. */
  peers() {
    if (this._closed) return [];
    return JSON.parse(this._node.peersJson());
  }

  /** Counters: the node's (as the C ABI reports them), `host` (wasm side) and `js` (signaling, channels). */
  stats() {
    if (this._closed) return { closed: true };
    const s = JSON.parse(this._node.statsJson());
    s.js = {
      ...this._js,
      links: this._links.size,
      channels_open: [...this._links.values()].filter(l => l.open).length,
      signal_connected: this._signals.filter(x => x.connected).length,
    };
    return s;
  }

  /** Listens for 'peerjoin' ({peer, channel}), 'peerleave' ({peer, reason}) or 'message'; returns a function that stops listening. */
  on(event, cb) {
    let set = this._handlers.get(event);
    if (!set) this._handlers.set(event, set = new Set());
    set.add(cb);
    return () => set.delete(cb);
  }

  /** Closes every session (peers are told), the channels and the signal connections. */
  async close() {
    if (this._closed) return;
    this._node.shutdown();
    this._pump();
    this._closed = true;
    clearTimeout(this._timer);
    this._members.forEach(m => clearTimeout(m.timer));
    this._members.clear();
    // Let the close frames leave before the channels go.
    const links = [...this._links.values()];
    for (let i = 0; i < 20 && links.some(l => l.buffered() > 0); i++) await new Promise(r => setTimeout(r, 10));
    links.forEach(l => l.close());
    this._signals.forEach(s => s.stop());
    this._node.free();
  }

  _live() { if (this._closed) throw new MossError(-3, 'closed'); }

  _emit(event, arg) {
    for (const cb of this._handlers.get(event) ?? []) { try { cb(arg); } catch (e) { report(e); } }
  }

  /** Drains the node: datagrams onto their channels, events to the page; then re-arms the one timer. */
  _pump() {
    if (this._closed) return;
    const n = this._node;
    for (let b = n.pollTransmit(); b !== undefined; b = n.pollTransmit()) {
      const link = this._byChannel.get(n.transmitChannel());
      if (!link || !link.send(b)) this._js.send_dropped++;
    }
    for (let e = n.pollEvent(); e !== undefined; e = n.pollEvent()) {
      const kind = e.kind;
      if (kind === 'message') {
        const m = { topic: e.topic, from: e.peer, data: e.takeData(), hops: e.hops };
        for (const cb of this._subs.get(m.topic) ?? []) { try { cb(m); } catch (err) { report(err); } }
        this._emit('message', m);
      } else if (kind === 'join') {
        this._emit('peerjoin', { peer: e.peer, channel: e.channel });
      } else if (kind === 'leave') {
        this._emit('peerleave', { peer: e.peer, channel: e.channel, reason: e.reason });
      } else if (kind === 'connect_failed') {
        const link = this._byChannel.get(e.channel);
        if (link) { this._js.links_failed++; this._drop(link); }
      }
      e.free();
    }
    if (this._closed) return;
    clearTimeout(this._timer);
    const ms = Math.min(Math.max(0, n.nextTimeoutMs()), 60000);
    this._timer = setTimeout(() => { if (!this._closed) { n.timeout(); this._pump(); } }, ms);
  }

  // --- called by SignalClient and Link ---

  /** A remote id appeared on a signal server: the smaller id offers, so two peers never both do. */
  _seen(remote, signal) {
    if (this._closed || remote === this._id || !(this._id < remote)) return;
    this._named(remote, signal);
    if (!this._links.has(remote)) this._link(remote, signal).offer();
  }

  /** The room named `remote`, whom we offer to: remember it, its failures start over. */
  _named(remote, signal) {
    const m = this._members.get(remote);
    if (m) {
      clearTimeout(m.timer);
      Object.assign(m, { signal, failures: 0, timer: undefined });
    } else if (this._members.size < MAX_MEMBERS) {
      this._members.set(remote, { signal, failures: 0, timer: undefined });
    }
  }

  /**
   * The link to `remote` failed or closed while it stays in the room: offer
   * again after a backoff (RETRY_MIN_MS doubling to RETRY_MAX_MS), at most
   * MAX_ATTEMPTS times in a row, as native nodes do (docs/PROTOCOL.md).
   */
  _lost(remote) {
    const m = this._members.get(remote);
    if (!m || this._closed) return;
    clearTimeout(m.timer);
    m.timer = undefined;
    m.failures++;
    if (m.failures > MAX_ATTEMPTS) return;
    const ms = Math.min(RETRY_MIN_MS * 2 ** (m.failures - 1), RETRY_MAX_MS);
    m.timer = setTimeout(() => {
      m.timer = undefined;
      if (this._closed || this._members.get(remote) !== m || this._links.has(remote)) return;
      this._js.links_retried++;
      this._link(remote, m.signal).offer();
    }, ms);
  }

  /** A remote id left a signal server: a link still being set up is given up, and it is not offered again. */
  _gone(remote) {
    const m = this._members.get(remote);
    if (m) { clearTimeout(m.timer); this._members.delete(remote); }
    const l = this._links.get(remote);
    if (l && !l.open) this._drop(l);
  }

  /** An envelope for us: offer, answer. Anything else, or malformed, is counted and ignored. */
  _signal(env, signal) {
    const from = env.from, sdp = env.data?.sdp;
    if (typeof from !== 'string' || typeof sdp !== 'string' || sdp.length > 16384) { this._js.signal_junk++; return; }
    if (env.type === 'offer') {
      if (this._closed || from === this._id) { this._js.signal_junk++; return; }
      // A fresh offer from a peer we hold a link to: it restarted (the
      // server stamps `from`, so nobody else can send it). The new link wins.
      const old = this._links.get(from);
      if (old) this._drop(old);
      this._link(from, signal).answer(sdp);
    } else if (env.type === 'answer') {
      const l = this._links.get(from);
      if (!l) { this._js.signal_junk++; return; }
      l.accept(sdp);
    } else {
      this._js.signal_junk++;
    }
  }

  _link(remote, signal) {
    const channel = this._nextChannel++;
    const link = new Link(this, remote, channel, signal, this._ice);
    this._links.set(remote, link);
    this._byChannel.set(channel, link);
    return link;
  }

  /** Link `link`'s DataChannel opened: the offerer dials through it. */
  _opened(link) {
    if (this._closed) return;
    const m = this._members.get(link.remote);
    if (m) m.failures = 0;
    if (link.offerer) this._node.connect(link.channel);
    this._pump();
  }

  /** A datagram (ArrayBuffer) or junk (anything else) on `link`. */
  _datagram(link, data) {
    if (this._closed) return;
    if (data instanceof ArrayBuffer) this._node.datagram(link.channel, new Uint8Array(data));
    else this._node.junk();
    this._pump();
  }

  /** Forgets `link` and tells the node its channel is gone. */
  _drop(link) {
    if (this._links.get(link.remote) === link) this._links.delete(link.remote);
    if (!this._byChannel.delete(link.channel)) return;
    link.close();
    if (this._closed) return;
    this._lost(link.remote);
    this._node.channelClosed(link.channel);
    this._pump();
  }
}
