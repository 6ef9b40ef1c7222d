// Page-level tests of the explorer in real headless Chromium (playwright-core
// driving Debian's chromium): two real moss-gateways and a plain node on
// loopback in one mesh with 5-second epochs, the explorer served from
// another origin, a fake tampering gateway, misbehaving gateways, a deep
// link to another mesh, the gateway's own /explorer/, and the wasm-vs-native
// verification benchmark. Screenshots go to target/explorer-artifacts/.
// env: GATEWAY_BIN, EXPLORER_PKG (wasm-bindgen output; default explorer/pkg), ARTIFACTS, NATIVE_BENCH_MS
import { chromium } from 'playwright-core';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { staticServer, fakeGateway } from './servers.mjs';
import { finish, step, assert, sleep, until, freePort } from './harness.mjs';

const ROOT = path.resolve(path.dirname(new URL(import.meta.url).pathname), '../../..');
const GATEWAY_BIN = process.env.GATEWAY_BIN ?? path.join(ROOT, 'target/debug/moss-gateway');
const PKG = process.env.EXPLORER_PKG ?? path.join(ROOT, 'explorer/pkg');
const ARTIFACTS = process.env.ARTIFACTS ?? path.join(ROOT, 'target/explorer-artifacts');
const MESH = 'explorer-test';
fs.mkdirSync(ARTIFACTS, { recursive: true });

const children = [];

const config = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'moss-explorer-')), 'config.json');
fs.writeFileSync(config, JSON.stringify({ telemetry: { enabled: true, epoch_sec: 5, k_anon: 1, bandwidth_cap_bytes: 1000000 } }));

async function gateway(staticPeer) {
  const udp = await freePort('udp'), http = await freePort('tcp');
  const args = ['-mesh', MESH, '-http', `127.0.0.1:${http}`, '-listen-port', String(udp), '-trackers=false', '-dht=false', '-lan=false', '-config', config];
  if (staticPeer) args.push('-static', `127.0.0.1:${staticPeer}`);
  const child = spawn(GATEWAY_BIN, args, { env: { ...process.env, RUST_LOG: 'warn' }, stdio: ['ignore', 'ignore', 'inherit'] });
  children.push(child);
  const base = `http://127.0.0.1:${http}`;
  await until(`${base} to answer`, async () => (await fetch(`${base}/api/stats`)).ok, 20000);
  return { base, udp, child };
}

async function chainOf(base, q = '') { return (await (await fetch(`${base}/api/chain${q}`)).json()); }

const panel = (page, i) => page.locator(`.gw[data-gateway="${i}"]`);
async function attr(page, i, name) { return panel(page, i).getAttribute(name); }

let browser, setupError;
try {
  if (!fs.existsSync(GATEWAY_BIN)) throw new Error(`no gateway binary at ${GATEWAY_BIN} (cargo build -p moss-gateway)`);
  const a = await gateway();
  const b = await gateway(a.udp);
  const node = await gateway(a.udp); // a third node in the mesh, not shown
  const site = await staticServer(path.join(ROOT, 'explorer'), PKG);
  const fake = await fakeGateway(a.base);
  browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync',
    // The explorer's origin counts as a public site, so every gateway read is
    // a public-to-local request, as from an https explorer to localhost.
    // Chromium 156 gates those by the Local Network Access permission (it no
    // longer sends Private Network Access preflights; the gateway still
    // answers them, checked below), granted here as a user would.
    `--ip-address-space-overrides=${site.origin.replace('http://', '')}=public`] });
  const ctx = await browser.newContext({ viewport: { width: 1400, height: 1250 } });
  await ctx.grantPermissions(['local-network-access']);
  const errors = [];
  ctx.on('weberror', e => errors.push(String(e.error())));

  console.log(`gateways ${a.base} ${b.base} (+ node ${node.base}), explorer at ${site.origin}, fake at ${fake.origin}`);
  await step('the gateways form one mesh and finalize a common chain', async () => {
    await until('two common verified epochs', async () => {
      const [ca, cb] = [await chainOf(a.base), await chainOf(b.base)];
      const common = ca.filter(l => cb.some(m => m.epoch === l.epoch));
      return common.length >= 2;
    }, 90000);
  });

  const healthy = await ctx.newPage();
  await step('the explorer on another origin verifies both chains and shows them agreeing', async () => {
    await healthy.goto(`${site.origin}/index.html?gw=${a.base},${b.base}&meshid=${MESH}`);
    await until('both panels live and verified', async () => {
      for (const i of [0, 1]) {
        if (await attr(healthy, i, 'data-state') !== 'live') return false;
        if (!(await attr(healthy, i, 'data-verified-through'))) return false;
        if (await attr(healthy, i, 'data-break-epochs')) throw new Error(`gateway ${i} shows breaks`);
      }
      const agreed = await healthy.locator('#agreement-card').getAttribute('data-agreed');
      return agreed && agreed.split(',').length >= 2;
    });
    const diverged = await healthy.locator('#agreement-card').getAttribute('data-diverged');
    assert(!diverged, `healthy gateways diverge at ${diverged}`);
    assert(await attr(healthy, 0, 'data-mesh') === MESH, 'mesh id shown');
    await until('the topology drawn', async () => (await healthy.locator('#topology').getAttribute('data-nodes')) >= 1);
  });

  await step('the topology drawing is deterministic for a digest and histograms, and shows no ids', async () => {
    const pics = await healthy.evaluate(async () => {
      const { drawTopology } = await import('./topology.js');
      const report = { epoch_digest: 'ab'.repeat(32), node_count_estimate: 40, nat_histogram: { public: 10, cgnat: 30 }, degree_histogram: { '1-2': 20, '3-5': 20 } };
      const draw = r => { const c = document.createElement('canvas'); c.width = 300; c.height = 200; drawTopology(c, r); return c.toDataURL(); };
      return [draw(report), draw(report), draw({ ...report, epoch_digest: 'cd'.repeat(32) })];
    });
    assert(pics[0] === pics[1], 'same input gave two pictures');
    assert(pics[0] !== pics[2], 'another digest gave the same picture');
    const text = await healthy.locator('body').innerText();
    assert(!/[0-9a-f]{64}/.test(text), 'a full digest or key is printed on the page');
  });

  const tampered = await ctx.newPage();
  await step('a gateway serving one altered digest is broken at exactly that epoch and disagrees', async () => {
    await tampered.goto(`${site.origin}/index.html?gw=${a.base},${b.base},${fake.origin}/tamper/&meshid=${MESH}`);
    const epoch = await until('the fake to pick an epoch', async () => fake.tampered());
    await until('the tampered panel', async () => (await attr(tampered, 2, 'data-break-epochs')) === String(epoch), 30000);
    await until('the fake dissenting at that epoch', async () => (await attr(tampered, 2, 'data-dissent')) === String(epoch), 30000);
    for (const i of [0, 1]) {
      assert(!(await attr(tampered, i, 'data-break-epochs')), `honest gateway ${i} marked broken`);
      assert(!(await attr(tampered, i, 'data-dissent')), `honest gateway ${i} marked dissenting`);
    }
    const diverged = await tampered.locator('#agreement-card').getAttribute('data-diverged');
    assert(diverged === String(epoch), `diverged epochs ${diverged}, want ${epoch}`);
    const breakText = await panel(tampered, 2).locator('.breaks li').first().innerText();
    assert(breakText.includes(`epoch ${epoch}`) && /expected [0-9a-f]{10}… got ff|expected [0-9a-f]{10}… got 00/.test(breakText), breakText);
  });

  await step('bad gateways give clear states: 100 MB body, truncated JSON, down, another mesh, slow', async () => {
    const down = `http://127.0.0.1:${await freePort('tcp')}`;
    const page = await ctx.newPage();
    await page.goto(`${site.origin}/index.html?gw=${fake.origin}/huge/,${fake.origin}/garbage/,${down},${fake.origin}/othermesh/,${fake.origin}/slow/&meshid=${MESH}`);
    const want = [['error', /more than|exceeds the 16777216-byte limit/], ['error', /truncated JSON/], ['down', /unreachable/], ['other-mesh', /somebody-else/], ['slow', /answered in/]];
    for (const [i, [state, text]] of want.entries()) {
      await until(`panel ${i} ${state}`, async () => (await attr(page, i, 'data-state')) === state && text.test(await panel(page, i).innerText()), 30000);
    }
    assert(fake.hugeBytesSent() < 40 << 20, `the page read ${fake.hugeBytesSent()} bytes of the 100 MB body`);
    const alive = await page.evaluate(() => 1 + 1);
    assert(alive === 2, 'page unresponsive');
    await page.screenshot({ path: path.join(ARTIFACTS, 'explorer-bad-gateways.png'), fullPage: true });
    await page.close();
  });

  await step('a deep link ?meshid=other makes the gateway join that mesh and the page shows it', async () => {
    const page = await ctx.newPage();
    await page.goto(`${site.origin}/index.html?gw=${a.base}&meshid=other`);
    await until('the panel on mesh other', async () => (await attr(page, 0, 'data-mesh')) === 'other' && (await attr(page, 0, 'data-state')) === 'live', 30000);
    const metrics = await (await fetch(`${a.base}/metrics`)).text();
    assert(metrics.includes('other'), 'the gateway does not list mesh "other" in /metrics');
    assert((await page.locator('#meshid').inputValue()) === 'other', 'mesh selector shows the deep-linked mesh');
    await page.close();
  });

  await step('the gateway serves the explorer itself at / (committed wasm) and it verifies its own chain', async () => {
    const page = await ctx.newPage();
    const res = await page.goto(`${a.base}/`);
    assert(page.url() === `${a.base}/explorer/`, `redirected to ${page.url()}`);
    assert(res.ok(), 'explorer page status');
    await until('own gateway verified', async () => (await attr(page, 0, 'data-state')) === 'live' && !!(await attr(page, 0, 'data-verified-through')), 30000);
    await page.close();
  });

  await step('the gateway answers CORS and Private Network Access preflights for its GET API', async () => {
    const pre = await fetch(`${a.base}/api/chain?meshid=${MESH}`, { method: 'OPTIONS', headers: {
      origin: 'https://explorer.example', 'access-control-request-method': 'GET',
      'access-control-request-private-network': 'true' } });
    assert(pre.status === 204, `preflight status ${pre.status}`);
    assert(pre.headers.get('access-control-allow-origin') === '*', 'allow-origin');
    assert(pre.headers.get('access-control-allow-private-network') === 'true', 'allow-private-network');
    assert(/GET/.test(pre.headers.get('access-control-allow-methods') ?? ''), 'allow-methods');
    const post = await fetch(`${a.base}/api/stats`, { method: 'POST', headers: { origin: 'https://explorer.example' } });
    assert(post.status === 405, `POST answered ${post.status}`);
    const get = await fetch(`${a.base}/api/stats`, { headers: { origin: 'https://explorer.example' } });
    assert(get.headers.get('access-control-allow-origin') === '*', 'GET allow-origin');
  });

  await step('benchmark: verify a 10,000-link chain in wasm', async () => {
    const ms = await healthy.evaluate(async () => {
      const mod = await import('./pkg/moss_wasm.js');
      const json = new TextEncoder().encode(mod.syntheticChainJson(10000, 7));
      const v = new mod.Verifier(1);
      const times = [];
      for (let i = 0; i < 15; i++) {
        const t0 = performance.now();
        const r = JSON.parse(v.setChain(0, json));
        times.push(performance.now() - t0);
        if (!r.ok || r.audit.verified_through !== 10000) throw new Error('bench chain did not verify');
      }
      times.sort((x, y) => x - y);
      return times[0];
    });
    const native = Number(process.env.NATIVE_BENCH_MS);
    const line = `verify 10,000-link chain (parse + audit): wasm in Chromium ${ms.toFixed(2)} ms (fastest of 15)` +
      (native ? `, native ${native.toFixed(2)} ms, wasm/native ${(ms / native).toFixed(2)}x` : '');
    console.log(line);
    fs.writeFileSync(path.join(ARTIFACTS, 'bench.txt'), line + '\n');
  });

  await step('the pages keep their verdicts as epochs pass (screenshots)', async () => {
    const first = Number(await attr(healthy, 0, 'data-verified-through'));
    await until('a newer verified epoch on both', async () => {
      for (const i of [0, 1]) if (Number(await attr(healthy, i, 'data-verified-through')) <= first) return false;
      // All three nodes' contributions merged, for a representative picture.
      if (!/3 contributors/.test(await panel(healthy, 0).innerText())) return false;
      return !(await healthy.locator('#agreement-card').getAttribute('data-diverged'));
    }, 30000);
    await healthy.screenshot({ path: path.join(ARTIFACTS, 'explorer-healthy.png'), fullPage: true });
    // The tampered page has kept running meanwhile: still exactly one epoch.
    const epoch = String(fake.tampered());
    assert(await attr(tampered, 2, 'data-break-epochs') === epoch, 'tampered page changed its verdict');
    assert(await attr(tampered, 2, 'data-dissent') === epoch, 'tampered page changed its dissent');
    await tampered.screenshot({ path: path.join(ARTIFACTS, 'explorer-tampered.png'), fullPage: true });
  });

  await step('no uncaught error in any page', async () => { assert(errors.length === 0, errors.join('\n')); });
} catch (e) {
  setupError = e;
}
await finish('explorer', { error: setupError, browser, children, artifacts: ARTIFACTS });
