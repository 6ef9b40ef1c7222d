// Browser pages meeting native nodes over WebRTC DataChannels, in real
// headless Chromium: a real moss-signal, a native moss-gateway with
// -webrtc (str0m under its engine, ICE host candidates), and two demo
// pages of the same mesh:
//  - the pages and the gateway meet through the signal room (the gateway
//    answers or offers like a page) and hold sessions on DataChannels;
//  - a message published natively (the moss CLI, dialling the gateway
//    over UDP: it can only reach the pages through the gateway's
//    DataChannels) reaches both pages;
//  - a page's message reaches the gateway's /api/messages;
//  - a page with the wrong PSK forced into the room gets nothing, and the
//    gateway keeps its two peers;
//  - figures, browser → native one hop: a page publishes to a native
//    `moss sub` (webrtc enabled, its own mesh), stamped on both ends with
//    the wall-clock-anchored performance clocks of one machine.
// Screenshot: $ARTIFACTS/native-demo.png.
// env: SIGNAL_BIN, GATEWAY_BIN, MOSS_BIN, PEER_DIR, PEER_PKG, ARTIFACTS
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { staticServer } from './servers.mjs';
import { finish, step, assert, sleep, settled, freePort } from './harness.mjs';
import { ARTIFACTS, PEER_DIR, PKG, bin, until, pct, needPkg, launch, opener, peersOf, idOf, receivedOf, publish } from './pages.mjs';

const SIGNAL_BIN = bin('SIGNAL_BIN', 'moss-signal');
const GATEWAY_BIN = bin('GATEWAY_BIN', 'moss-gateway');
const MOSS_BIN = bin('MOSS_BIN', 'moss');
const children = [];
const OFFLINE = ['-trackers=false', '-dht=false', '-lan=false'];
const CLI_OFFLINE = ['--no-trackers', '--no-dht', '--no-lan'];
const MESH = 'native-test';
const TOPIC = 'chat';
const LIFT = { security: { rate_limit_burst: 1 << 30, rate_limit_sustained: 1 << 30 } };

function run(bin, args, name) {
  const c = spawn(bin, args, { env: { ...process.env, RUST_LOG: process.env.RUST_LOG ?? 'warn' }, stdio: ['ignore', 'pipe', 'pipe'] });
  c.stderr.on('data', d => process.stderr.write(`[${name}] ${d}`));
  children.push(c);
  return c;
}

let browser, setupError;
try {
  for (const [bin, what] of [[SIGNAL_BIN, 'moss-signal'], [GATEWAY_BIN, 'moss-gateway'], [MOSS_BIN, 'moss (cli)']]) {
    if (!fs.existsSync(bin)) throw new Error(`no ${what} at ${bin} (cargo build -p moss-signal -p moss-gateway -p moss-cli)`);
  }
  needPkg();
  const sport = await freePort();
  run(SIGNAL_BIN, ['-addr', `127.0.0.1:${sport}`], 'signal');
  const sigWs = `ws://127.0.0.1:${sport}`;
  await until('moss-signal /healthz', async () => (await fetch(`http://127.0.0.1:${sport}/healthz`)).ok, 15000);
  const [hport, gport] = [await freePort(), await freePort('udp')];
  run(GATEWAY_BIN, ['-mesh', MESH, '-http', `127.0.0.1:${hport}`, '-listen-port', String(gport), ...OFFLINE,
    '-telemetry=false', '-subscribe', TOPIC, '-webrtc', '-signal', sigWs], 'gateway');
  const gw = `http://127.0.0.1:${hport}`;
  const gwStats = async () => (await (await fetch(`${gw}/api/stats`)).json());
  await until('gateway /api/stats', async () => (await fetch(`${gw}/api/stats`)).ok, 30000);

  const site = await staticServer(PEER_DIR, PKG);
  browser = await launch();
  const ctx = await browser.newContext({ viewport: { width: 1100, height: 640 } });
  const errors = [];
  const open = opener(ctx, site.origin, { signal: sigWs, topic: TOPIC }, errors);

  let a, b, ida, idb;
  await step('two pages and a native gateway meet in one mesh over DataChannels', async () => {
    a = await open('A', { mesh: MESH });
    b = await open('B', { mesh: MESH });
    [ida, idb] = [await idOf(a), await idOf(b)];
    await until('each page has the other and the gateway', async () => (await peersOf(a)).length === 2 && (await peersOf(b)).length === 2, 40000);
    assert((await peersOf(a)).includes(idb) && (await peersOf(b)).includes(ida), 'the pages peered');
    await until('the gateway has both pages', async () => (await gwStats()).node.peer_count === 2, 20000);
  });

  await step('a message published natively reaches both pages through the gateway', async () => {
    // The CLI dials the gateway over UDP and has no WebRTC: the pages can
    // only get its message over the gateway's DataChannels.
    const pub = run(MOSS_BIN, ['pub', TOPIC, 'hello from native', '--mesh', MESH, '--static', `127.0.0.1:${gport}`, ...CLI_OFFLINE, '--wait', '20'], 'pub');
    const code = await new Promise(r => pub.on('exit', r));
    assert(code === 0, `moss pub exited ${code}`);
    for (const [p, n] of [[a, 'A'], [b, 'B']]) {
      await until(`${n} got the native message`, async () => (await receivedOf(p)).some(m => m.text === 'hello from native'));
    }
  });

  await step('a page\'s message reaches the gateway\'s /api/messages', async () => {
    await publish(a, 'hello from page A');
    const m = await until('the gateway kept it', async () => {
      const list = await (await fetch(`${gw}/api/messages?topic=${TOPIC}`)).json();
      return (list.messages ?? list).find?.(x => x.text === 'hello from page A');
    });
    assert(m.from === ida, `sender is page A: ${JSON.stringify(m)}`);
  });

  await step('a page with the wrong PSK in the room gets nothing; the gateway keeps two peers', async () => {
    const room = await a.evaluate(() => window.moss.room);
    const c = await open('C', { mesh: MESH, psk: 'cd'.repeat(32), room });
    await until('C opened DataChannels (pages and gateway answer it)', async () => (await c.evaluate(() => window.moss.stats().js.channels_open)) >= 1, 20000);
    await publish(b, 'not for C');
    await until('A got B\'s message', async () => (await receivedOf(a)).some(m => m.text === 'not for C'));
    await sleep(1500);
    assert((await receivedOf(c)).length === 0, 'C received nothing');
    assert((await peersOf(c)).length === 0, 'C has no peers');
    assert((await gwStats()).node.peer_count === 2, 'the gateway still has only A and B');
    await c.close();
  });

  await step('screenshot of a page meeting the native gateway', async () => {
    await a.fill('#say input[name=text]', 'typed in page A');
    await a.click('#say button');
    await until('the gateway got the typed message', async () => {
      const list = await (await fetch(`${gw}/api/messages?topic=${TOPIC}`)).json();
      return (list.messages ?? list).some?.(x => x.text === 'typed in page A');
    });
    await a.screenshot({ path: path.join(ARTIFACTS, 'native-demo.png') });
  });

  await step('figures: browser → native one hop (messages/s, p50/p99)', async () => {
    // A native subscriber with WebRTC on, and one page, in a mesh of their own.
    const cfg = path.join(os.tmpdir(), `moss-native-bench-${process.pid}.json`);
    fs.writeFileSync(cfg, JSON.stringify({ ...LIFT, webrtc: { enabled: true, signal: [sigWs] } }));
    const sub = run(MOSS_BIN, ['sub', 'bench', '--json', '--mesh', 'native-bench', '--config', cfg, ...CLI_OFFLINE], 'sub');
    const arrivals = [];
    readline.createInterface({ input: sub.stdout }).on('line', l => {
      const t = performance.timeOrigin + performance.now();
      try { arrivals.push({ t, text: JSON.parse(l).text }); } catch { /* not a message line */ }
    });
    const f = await open('F', { mesh: 'native-bench', topic: 'bench', config: JSON.stringify(LIFT) });
    await until('F met the native subscriber', async () => (await peersOf(f)).length === 1, 40000);
    await publish(f, 'warm', 'bench');
    await until('the native subscriber got the first message', () => arrivals.length > 0, 15000);
    // Latency: one message every 10 ms, stamped with the page's wall-clock-anchored clock.
    const N = 300;
    arrivals.length = 0;
    await f.evaluate(async n => {
      for (let i = 0; i < n; i++) {
        window.moss.publish('bench', `lat ${i} ${performance.timeOrigin + performance.now()}`);
        await new Promise(r => setTimeout(r, 10));
      }
    }, N);
    await until('latency messages in', () => arrivals.length >= N * 0.9, 30000);
    await settled(() => arrivals.length);
    const lat = arrivals.filter(x => x.text?.startsWith('lat ')).map(x => x.t - Number(x.text.split(' ')[2])).sort((x, y) => x - y);
    assert(lat.length >= N * 0.9, `most latency messages arrived (${lat.length}/${N})`);
    // Throughput: 5000 64-byte messages in batches of 50, counted natively.
    arrivals.length = 0;
    const M = 5000;
    await f.evaluate(async m => {
      const s = 'x'.repeat(64);
      for (let i = 0; i < m; i++) { window.moss.publish('bench', s); if (i % 50 === 49) await new Promise(r => setTimeout(r, 0)); }
    }, M);
    await settled(() => arrivals.length);
    const fl = arrivals.filter(x => x.text === 'x'.repeat(64));
    assert(fl.length > M / 2, `most flood messages arrived natively (${fl.length}/${M})`);
    const figures = {
      browserToNative: {
        oneHopP50Ms: pct(lat, 0.5), oneHopP99Ms: pct(lat, 0.99), samples: lat.length,
        msgsPerSec: fl.length / ((fl[fl.length - 1].t - fl[0].t) / 1000), delivered: fl.length, sent: M,
      },
      loadavg: os.loadavg(),
    };
    console.log(`  figures: ${JSON.stringify(figures)}`);
    fs.writeFileSync(path.join(ARTIFACTS, 'native-bench.json'), JSON.stringify(figures, null, 1));
    await f.close();
    sub.kill('SIGTERM');
    fs.rmSync(cfg, { force: true });
  });

  await step('no page error', async () => {
    assert(errors.length === 0, errors.join('\n'));
  });
} catch (e) {
  setupError = e;
}
await finish('native', { error: setupError, browser, children, artifacts: ARTIFACTS });
