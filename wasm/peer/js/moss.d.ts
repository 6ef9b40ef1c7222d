// Types of the Moss browser peer (js/moss.js).

/** An error of a Moss call; `code` is the C ABI's MOSS_ERR_* value
 * (-3 closed, -4 bad topic, -5 too large, -6 no peers, -8 config, -12
 * no randomness, -14 bad argument: a PSK or seed of the wrong size, a
 * signal URL that is not ws:// or wss://). */
export class MossError extends Error {
  readonly code: number;
}

export interface MossOptions {
  /** The mesh to join (the same id native nodes use). */
  meshId: string;
  /** 32 bytes, or 64 hex digits: a private mesh's pre-shared key. */
  psk?: Uint8Array | string;
  /** moss-signal base URLs (`ws://host:port` or `wss://…`); several work like trackers. */
  signal: string[];
  /** The C ABI's config JSON, as an object or text. */
  config?: object | string;
  /** ICE servers for RTCPeerConnection (default none: host candidates only). */
  iceServers?: RTCIceServer[];
  /** Keep the identity in IndexedDB under this key (`true`: "default"). Off by default. */
  persistIdentity?: boolean | string;
  /** Override of the signaling room (default: the mesh's infohash in hex). For tests. */
  room?: string;
  /** Where the wasm module is (default: next to the JS glue in ../pkg). */
  wasm?: string | URL;
}

export interface MossMessage {
  topic: string;
  /** Publisher's peer id (public key, hex). */
  from: string;
  data: Uint8Array;
  /** Links travelled: 1 = straight from the publisher. */
  hops: number;
}

export interface PeerInfo {
  peer: string;
  /** The DataChannel's id in this page. */
  channel: number | null;
  topics: string[];
  /** True if this page dialled the peer. */
  outbound: boolean;
}

export interface PeerJoin { peer: string; channel: number | null; }
export interface PeerLeave { peer: string; channel: number | null; reason: 'timeout' | 'closed' | 'shutdown' | string; }

export interface MossStats {
  datagrams_in: number;
  datagrams_out: number;
  bytes_in: number;
  bytes_out: number;
  handshakes_initiated: number;
  handshakes_completed: number;
  handshakes_failed: number;
  messages_published: number;
  messages_delivered: number;
  messages_forwarded: number;
  messages_duplicate: number;
  /** Dropped inputs by reason (junk datagrams land here). */
  drops: Record<string, number>;
  peers: number;
  sessions: number;
  /** Counted in wasm: non-binary DataChannel messages, datagrams for paths a page cannot carry, closed channels. */
  host: { junk_dropped: number; unroutable_dropped: number; channels_closed: number };
  /** Counted in JS: malformed signaling, datagrams a channel could not take, links that never opened. */
  js: { signal_junk: number; send_dropped: number; links_failed: number; links_retried: number; links: number; channels_open: number; signal_connected: number };
}

export class Moss {
  static create(opts: MossOptions): Promise<Moss>;
  /** This peer's id: its public key in hex. */
  readonly id: string;
  /** The signaling room: the mesh's infohash in hex. */
  readonly room: string;
  /** Calls `cb` for each message on `topic`; returns an unsubscribe function. Throws MossError -4. */
  subscribe(topic: string, cb: (m: MossMessage) => void): () => void;
  /** Publishes on `topic` (a string is sent as UTF-8); returns the message id in hex. Throws MossError -4, -5, -6. */
  publish(topic: string, data: Uint8Array | string): string;
  peers(): PeerInfo[];
  stats(): MossStats;
  on(event: 'peerjoin', cb: (p: PeerJoin) => void): () => void;
  on(event: 'peerleave', cb: (p: PeerLeave) => void): () => void;
  on(event: 'message', cb: (m: MossMessage) => void): () => void;
  /** Closes every session (peers are told), the channels and the signal connections. */
  close(): Promise<void>;
}
