// One peer link: an RTCPeerConnection with one negotiated DataChannel
// (id 0, unordered, no retransmits: it behaves like the UDP path), set up
// by a single offer and answer carrying complete SDP (ICE gathered first,
// so a link costs two envelopes on the signal server).

/** Longest wait for ICE gathering before the SDP goes out as it is. */
const GATHER_MS = 3000;
/** A link whose channel is not open by then is given up. */
const SETUP_MS = 20000;

function gathered(pc) {
  if (pc.iceGatheringState === 'complete') return Promise.resolve();
  return new Promise(resolve => {
    const t = setTimeout(resolve, GATHER_MS);
    pc.addEventListener('icegatheringstatechange', () => {
      if (pc.iceGatheringState === 'complete') { clearTimeout(t); resolve(); }
    });
  });
}

/** A DataChannel link to `remote`, carrying node channel `channel`. */
export class Link {
  constructor(moss, remote, channel, signal, iceServers) {
    this.moss = moss;
    this.remote = remote;
    this.channel = channel;
    this.signal = signal;
    this.offerer = false;
    this.open = false;
    this.closed = false;
    this.pc = new RTCPeerConnection({ iceServers });
    this.dc = this.pc.createDataChannel('moss', { negotiated: true, id: 0, ordered: false, maxRetransmits: 0 });
    this.dc.binaryType = 'arraybuffer';
    this.dc.onopen = () => { this.open = true; clearTimeout(this.setup); moss._opened(this); };
    this.dc.onmessage = ev => moss._datagram(this, ev.data);
    this.dc.onclose = () => moss._drop(this);
    this.pc.onconnectionstatechange = () => {
      if (this.pc.connectionState === 'failed' || this.pc.connectionState === 'closed') moss._drop(this);
    };
    this.setup = setTimeout(() => { if (!this.open) { moss._js.links_failed++; moss._drop(this); } }, SETUP_MS);
  }

  /** We offer: our side dials the node session once the channel opens. */
  async offer() {
    this.offerer = true;
    try {
      await this.pc.setLocalDescription(await this.pc.createOffer());
      await gathered(this.pc);
      if (!this.closed) this.signal.send({ type: 'offer', to: this.remote, data: { sdp: this.pc.localDescription.sdp } });
    } catch { this.fail(); }
  }

  /** The remote offered `sdp`: answer it. */
  async answer(sdp) {
    try {
      await this.pc.setRemoteDescription({ type: 'offer', sdp });
      await this.pc.setLocalDescription(await this.pc.createAnswer());
      await gathered(this.pc);
      if (!this.closed) this.signal.send({ type: 'answer', to: this.remote, data: { sdp: this.pc.localDescription.sdp } });
    } catch { this.fail(); }
  }

  /** The remote answered our offer with `sdp`. */
  async accept(sdp) {
    if (!this.offerer || this.pc.signalingState !== 'have-local-offer') { this.moss._js.signal_junk++; return; }
    try { await this.pc.setRemoteDescription({ type: 'answer', sdp }); } catch { this.fail(); }
  }

  fail() { this.moss._js.links_failed++; this.moss._drop(this); }

  /** Sends one datagram; false if the channel cannot take it now. */
  send(bytes) {
    if (this.dc.readyState !== 'open') return false;
    try { this.dc.send(bytes); return true; } catch { return false; }
  }

  /** Bytes queued on the channel and not yet sent. */
  buffered() { return this.dc.readyState === 'open' ? this.dc.bufferedAmount : 0; }

  close() {
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this.setup);
    try { this.dc.close(); } catch { /* already closed */ }
    try { this.pc.close(); } catch { /* already closed */ }
  }
}
