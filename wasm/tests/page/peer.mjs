// Page-level tests of the browser peer in real headless Chromium
// (playwright-core driving Debian's chromium): a real moss-signal on
// loopback, the demo page (wasm/peer/demo) served statically, and pages
// meeting over real WebRTC DataChannels:
//  - two pages of one mesh see each other, subscribe, publish, receive;
//  - a page with the wrong PSK, forced into the same signaling room, opens
//    DataChannels but gets no session and no message (its datagrams are
//    junk to the others: dropped and counted);
//  - a page of another mesh (another room) receives nothing;
//  - a raw DataChannel sending junk (binary and text) harms nobody;
//  - closing a page is seen by the other (peer left);
//  - figures: cold start to first session, messages/s, p50/p99 one hop.
// Screenshot of the demo: $ARTIFACTS/peer-demo.png (and $SCREENSHOT if set).
// env: SIGNAL_BIN, PEER_DIR (served: js/, demo/), PEER_PKG (the wasm-bindgen output), ARTIFACTS, SCREENSHOT
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { staticServer } from './servers.mjs';
import { finish, step, assert, sleep, settled, freePort } from './harness.mjs';
import { ARTIFACTS, PEER_DIR, PKG, bin, until, pct, needPkg, launch, opener, peersOf, statsOf, idOf, receivedOf, publish } from './pages.mjs';

const SIGNAL_BIN = bin('SIGNAL_BIN', 'moss-signal');
const children = [];

const MESH = 'browser-test';
const TOPIC = 'chat';
let browser, setupError;
try {
  if (!fs.existsSync(SIGNAL_BIN)) throw new Error(`no moss-signal at ${SIGNAL_BIN} (cargo build -p moss-signal)`);
  needPkg();
  // Two signal servers: A and B join both (like trackers), the others the first.
  async function signalServer() {
    const port = await freePort();
    const sig = spawn(SIGNAL_BIN, ['--addr', `127.0.0.1:${port}`], { env: { ...process.env, RUST_LOG: 'warn' }, stdio: ['ignore', 'ignore', 'inherit'] });
    children.push(sig);
    const http = `http://127.0.0.1:${port}`;
    await until('moss-signal /healthz', async () => (await fetch(`${http}/healthz`)).ok, 15000);
    return { http, ws: `ws://127.0.0.1:${port}` };
  }
  const [s1, s2] = [await signalServer(), await signalServer()];
  const sigHttp = s1.http, sigWs = s1.ws;
  const site = await staticServer(PEER_DIR, PKG);
  browser = await launch();
  const ctx = await browser.newContext({ viewport: { width: 1100, height: 640 } });
  const errors = [];
  const open = opener(ctx, site.origin, { signal: sigWs, topic: TOPIC }, errors);

  let a, b, ida, idb, room;
  await step('two pages of one mesh meet through two moss-signal servers and see each other once', async () => {
    a = await open('A', { mesh: MESH, signal2: s2.ws });
    b = await open('B', { mesh: MESH, signal2: s2.ws });
    [ida, idb] = [await idOf(a), await idOf(b)];
    room = await a.evaluate(() => window.moss.room);
    assert(/^[0-9a-f]{40}$/.test(room), `room is the infohash in hex: ${room}`);
    assert(room !== MESH && !room.includes(MESH), 'the mesh id is not sent in clear');
    await until('A and B peered', async () => (await peersOf(a)).includes(idb) && (await peersOf(b)).includes(ida));
    for (const srv of [s1, s2]) {
      const metrics = await (await fetch(`${srv.http}/metrics`)).text();
      assert(/moss_signal_rooms 1\b/.test(metrics), `one room on each signal server:\n${metrics}`);
    }
    for (const p of [a, b]) {
      const js = (await statsOf(p)).js;
      assert(js.signal_connected === 2 && js.links === 1 && js.channels_open === 1, `one link per peer over two servers: ${JSON.stringify(js)}`);
    }
  });

  await step('each subscribes, publishes and receives the other\'s messages', async () => {
    await publish(a, 'hello from A');
    await publish(b, 'hello from B');
    await until('B got A\'s message', async () => (await receivedOf(b)).some(m => m.text === 'hello from A' && m.from === ida));
    await until('A got B\'s message', async () => (await receivedOf(a)).some(m => m.text === 'hello from B' && m.from === idb));
  });

  let c, d;
  await step('a page with the wrong PSK in the same room gets no session and no message', async () => {
    c = await open('C', { mesh: MESH, psk: 'ab'.repeat(32), room });
    await until('C opened DataChannels to A and B', async () => (await statsOf(c)).js.channels_open >= 2, 20000);
    // Whoever dialled, the other side cannot unmask its handshake: dropped and counted.
    const unrecognized = async () => {
      let n = 0;
      for (const p of [a, b, c]) n += (await statsOf(p)).drops.unrecognized;
      return n;
    };
    await until('the handshakes across the PSK boundary were dropped and counted', async () => (await unrecognized()) >= 2, 15000);
    await publish(a, 'secret from A');
    await until('B got it', async () => (await receivedOf(b)).some(m => m.text === 'secret from A'));
    await sleep(1000);
    assert((await receivedOf(c)).length === 0, 'C received nothing');
    assert((await peersOf(c)).length === 0, 'C has no peers');
    assert(!(await peersOf(a)).some(p => p !== idb), 'A has only B');
  });

  await step('a page of another mesh receives nothing', async () => {
    d = await open('D', { mesh: 'another-mesh' });
    const droom = await d.evaluate(() => window.moss.room);
    assert(droom !== room, 'another room');
    await publish(a, 'only for browser-test');
    await until('B got it', async () => (await receivedOf(b)).some(m => m.text === 'only for browser-test'));
    await sleep(1000);
    assert((await receivedOf(d)).length === 0, 'D received nothing');
    assert((await peersOf(d)).length === 0, 'D has no peers');
  });

  await step('junk on a real DataChannel is dropped and counted, nothing throws', async () => {
    // A raw peer in the test page: joins A's room as id "0" (smaller than any
    // hex key, so it offers), opens the same negotiated channel and sends
    // binary junk and text.
    const before = await statsOf(a);
    const raw = await ctx.newPage();
    raw.on('pageerror', e => errors.push(`raw: ${e.message}`));
    await raw.goto(`${site.origin}/demo/index.html`);
    const sent = await raw.evaluate(async ({ url, target }) => {
      const ws = new WebSocket(url);
      await new Promise((res, rej) => { ws.onopen = res; ws.onerror = rej; });
      const pc = new RTCPeerConnection();
      const dc = pc.createDataChannel('moss', { negotiated: true, id: 0, ordered: false, maxRetransmits: 0 });
      await pc.setLocalDescription(await pc.createOffer());
      await new Promise(r => { if (pc.iceGatheringState === 'complete') r(); pc.onicegatheringstatechange = () => pc.iceGatheringState === 'complete' && r(); setTimeout(r, 3000); });
      ws.onmessage = async ev => { const m = JSON.parse(ev.data); if (m.type === 'answer') await pc.setRemoteDescription({ type: 'answer', sdp: m.data.sdp }); };
      ws.send(JSON.stringify({ type: 'offer', to: target, data: { sdp: pc.localDescription.sdp } }));
      ws.send(JSON.stringify({ type: 'answer', to: target, data: { sdp: 'v=0 nonsense' } }));
      ws.send(JSON.stringify({ type: 'offer', to: target, data: 42 }));
      await new Promise((res, rej) => { dc.onopen = res; setTimeout(() => rej(new Error('raw channel did not open')), 15000); });
      let n = 0;
      for (const len of [0, 1, 3, 16, 17, 64, 200, 1200, 1400, 4000]) {
        for (let i = 0; i < 5; i++) { const b = new Uint8Array(len); crypto.getRandomValues(b); dc.send(b); n++; }
      }
      dc.send('text is junk too'); n++;
      window.rawDc = dc;
      return n;
    }, { url: `${sigWs}/signal?room=${room}&id=0`, target: ida });
    const s = await until('A counted the junk', async () => {
      const s = await statsOf(a);
      const drops = Object.values(s.drops).reduce((x, y) => x + y, 0) - Object.values(before.drops).reduce((x, y) => x + y, 0);
      return s.host.junk_dropped >= 1 && drops >= 40 ? s : false;
    }, 15000);
    console.log(`  junk: sent ${sent} datagrams; A dropped ${JSON.stringify(s.drops)}, ${s.host.junk_dropped} text, signal junk ${s.js.signal_junk}`);
    await publish(a, 'still working');
    await until('B got it after the junk', async () => (await receivedOf(b)).some(m => m.text === 'still working'));
    await raw.close();
  });

  await step('an opt-in identity persists in IndexedDB across reloads', async () => {
    const p = await ctx.newPage();
    await p.goto(`${site.origin}/demo/index.html`);
    const make = () => p.evaluate(async () => {
      const { Moss } = await import('/js/moss.js');
      const m = await Moss.create({ meshId: 'x', signal: [], persistIdentity: 'test' });
      const fresh = await Moss.create({ meshId: 'x', signal: [] });
      const ids = [m.id, fresh.id];
      await m.close(); await fresh.close();
      return ids;
    });
    const [kept1, fresh1] = await make();
    await p.reload();
    const [kept2, fresh2] = await make();
    assert(kept1 === kept2, 'the kept identity is the same after a reload');
    assert(fresh1 !== fresh2 && fresh1 !== kept1, 'without persistIdentity each node is new');
    const err = await p.evaluate(async () => {
      const { Moss } = await import('/js/moss.js');
      const out = [];
      for (const o of [{ meshId: 'x', signal: [], psk: 'abcd' }, { meshId: 'x', signal: [], config: '{"security": 5}' }, { meshId: '', signal: [] }, { meshId: 'x', signal: ['not a url'] }, { meshId: 'x', signal: ['http://127.0.0.1:1'] }]) {
        try { await Moss.create(o); out.push('no error'); } catch (e) { out.push(`${e.name} ${e.code}`); }
      }
      return out;
    });
    assert(JSON.stringify(err) === JSON.stringify(['MossError -14', 'MossError -8', 'MossError -8', 'MossError -14', 'MossError -14']), `MossError codes: ${err}`);
    await p.close();
  });

  await step('a link lost while both stay in the room is offered again, and the peers meet again', async () => {
    const r1 = await open('R1', { mesh: 'browser-retry' });
    const r2 = await open('R2', { mesh: 'browser-retry' });
    const [id1, id2] = [await idOf(r1), await idOf(r2)];
    await until('R1 and R2 peered', async () => (await peersOf(r1)).includes(id2) && (await peersOf(r2)).includes(id1));
    // The larger id answered; it drops its link (as a failed ICE or DTLS
    // would). The offerer sees its channel close, nobody leaves the room.
    const [offerer, answerer, offererId] = id1 < id2 ? [r1, r2, id1] : [r2, r1, id2];
    const before = (await statsOf(offerer)).js.links_retried;
    await answerer.evaluate(remote => { const m = window.moss; m._drop(m._links.get(remote)); }, offererId);
    await until('the offerer offered again and both peered again', async () => {
      const js = (await statsOf(offerer)).js;
      return js.links_retried > before && js.channels_open === 1 && (await peersOf(answerer)).includes(offererId);
    }, 20000);
    await publish(offerer, 'after the retry');
    await until('the answerer got it', async () => (await receivedOf(answerer)).some(m => m.text === 'after the retry'));
    await r1.close(); await r2.close();
  });

  let figures = {};
  await step('figures: cold start, messages/s, one-hop latency', async () => {
    // Two fresh pages in a mesh of their own, the per-peer inbound rate
    // limit (security.rate_limit_*, 64 KB/s by default) lifted so the
    // figures are the path's, not the limit's. Cold start: F, in a fresh
    // browser context (no cache), from joining to its first session with G.
    const config = JSON.stringify({ security: { rate_limit_burst: 1 << 30, rate_limit_sustained: 1 << 30 } });
    const g = await open('G', { mesh: 'browser-bench', config });
    const f = await open('F', { mesh: 'browser-bench', config }, await browser.newContext());
    figures.coldStartMs = await until('F\'s first session', () => f.evaluate(() => window.firstSessionMs), 20000);
    const [a, b] = [f, g];
    // One-hop latency: F publishes ping i, G answers pong i at once; RTT/2 on F's clock.
    await b.evaluate(() => { window.moss.subscribe('ping', m => window.moss.publish('pong', m.data)); });
    await a.evaluate(() => { window.pongs = new Map(); window.moss.subscribe('pong', m => window.pongs.set(new DataView(m.data.buffer, m.data.byteOffset).getUint32(0), performance.now())); });
    await until('ping mesh ready', () => a.evaluate(() => { try { window.moss.publish('ping', new Uint8Array(4).fill(255)); return true; } catch { return false; } }), 10000);
    await sleep(500);
    const rtts = await a.evaluate(async () => {
      const out = [];
      for (let i = 0; i < 300; i++) {
        const buf = new Uint8Array(64); new DataView(buf.buffer).setUint32(0, i);
        const t0 = performance.now();
        window.moss.publish('ping', buf);
        const end = t0 + 2000;
        while (!window.pongs.has(i) && performance.now() < end) await new Promise(r => setTimeout(r, 0));
        if (window.pongs.has(i)) out.push(window.pongs.get(i) - t0);
      }
      return out;
    });
    rtts.sort((x, y) => x - y);
    assert(rtts.length >= 250, `most pings answered (${rtts.length}/300)`);
    figures.oneHopP50 = pct(rtts, 0.5) / 2; figures.oneHopP99 = pct(rtts, 0.99) / 2; figures.pings = rtts.length;
    // Throughput: F publishes N 64-byte messages in batches, G counts them on its clock.
    await b.evaluate(() => { window.flood = { n: 0, first: 0, last: 0 }; window.moss.subscribe('flood', () => { const f = window.flood; const t = performance.now(); if (!f.n) f.first = t; f.last = t; f.n++; }); });
    await until('flood mesh ready', () => a.evaluate(() => { try { window.moss.publish('flood', new Uint8Array(1)); return true; } catch { return false; } }), 10000);
    await sleep(300);
    await b.evaluate(() => { window.flood = { n: 0, first: 0, last: 0 }; });
    const N = 5000;
    const sendMs = await a.evaluate(async n => {
      const t0 = performance.now(); const buf = new Uint8Array(64);
      for (let i = 0; i < n; i++) { window.moss.publish('flood', buf); if (i % 50 === 49) await new Promise(r => setTimeout(r, 0)); }
      return performance.now() - t0;
    }, N);
    await settled(() => b.evaluate(() => window.flood.n));
    const fl = await b.evaluate(() => window.flood);
    const [sa, sb] = [await statsOf(a), await statsOf(b)];
    figures.flood = { a_datagrams_out: sa.datagrams_out, a_send_dropped: sa.js.send_dropped, b_datagrams_in: sb.datagrams_in, b_delivered: sb.messages_delivered, b_drops: Object.fromEntries(Object.entries(sb.drops).filter(([, v]) => v)) };
    assert(fl.n > N / 2, `most flood messages arrived (${fl.n}/${N})`);
    figures.msgsPerSec = fl.n / ((fl.last - fl.first) / 1000);
    // The same flood between two wasm nodes of one page wired in memory
    // (JS moves each datagram straight across): the node's own limit in
    // this browser, measured in the same run, for the ratio.
    figures.inMemory = await g.evaluate(async ({ n, config }) => {
      const { MossNode } = await import('/pkg/moss_wasm_peer.js');
      const nodes = [new MossNode('mem', null, config, null), new MossNode('mem', null, config, null)];
      let got = 0, first = 0, last = 0;
      const pump = () => {
        for (let moved = true; moved;) {
          moved = false;
          for (let i = 0; i < 2; i++) {
            for (let d = nodes[i].pollTransmit(); d !== undefined; d = nodes[i].pollTransmit()) { nodes[1 - i].datagram(1, d); moved = true; }
            for (let e = nodes[i].pollEvent(); e !== undefined; e = nodes[i].pollEvent()) {
              if (i === 1 && e.kind === 'message') { const t = performance.now(); if (!got) first = t; last = t; got++; }
              e.free();
            }
          }
        }
      };
      nodes.forEach(x => x.subscribe('flood'));
      nodes[0].connect(1);
      pump();
      for (let k = 0; k < 50 && got === 0; k++) { try { nodes[0].publish('flood', new Uint8Array(1)); } catch { /* no subscriber yet */ } nodes.forEach(x => x.timeout()); pump(); await new Promise(r => setTimeout(r, 20)); }
      got = 0;
      const buf = new Uint8Array(64);
      const t0 = performance.now();
      for (let i = 0; i < n; i++) { nodes[0].publish('flood', buf); pump(); }
      const ms = performance.now() - t0;
      nodes.forEach(x => x.free());
      return { delivered: got, msgsPerSec: got / (ms / 1000) };
    }, { n: N, config });
    figures.ratioToInMemory = figures.msgsPerSec / figures.inMemory.msgsPerSec;
    figures.delivered = fl.n; figures.sent = N; figures.sendMs = sendMs;
    console.log(`  figures: ${JSON.stringify(figures)}`);
    fs.writeFileSync(path.join(ARTIFACTS, 'bench.json'), JSON.stringify(figures, null, 1));
    await f.close(); await g.close();
  });

  await step('screenshot of the demo page', async () => {
    await a.fill('#say input[name=text]', 'hello from the demo');
    await a.click('#say button');
    await until('B got the typed message', async () => (await receivedOf(b)).some(m => m.text === 'hello from the demo'));
    const shot = path.join(ARTIFACTS, 'peer-demo.png');
    await a.screenshot({ path: shot });
    if (process.env.SCREENSHOT) fs.copyFileSync(shot, process.env.SCREENSHOT);
  });

  await step('closing a page is seen by the other (peer left)', async () => {
    await a.evaluate(() => { window.left = []; window.moss.on('peerleave', p => window.left.push(p)); });
    await b.close();
    const left = await until('A saw B leave', () => a.evaluate(id => window.left.find(p => p.peer === id), idb), 40000);
    console.log(`  B left A's view: ${JSON.stringify(left)}`);
    assert(!(await peersOf(a)).includes(idb), 'B no longer among A\'s peers');
  });

  await step('no page error', async () => {
    assert(errors.length === 0, errors.join('\n'));
  });
} catch (e) {
  setupError = e;
}
await finish('peer', { error: setupError, browser, children, artifacts: ARTIFACTS });
