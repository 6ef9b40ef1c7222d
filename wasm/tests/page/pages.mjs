// Shared by the page tests that drive the demo page (peer.mjs, native.mjs):
// where the binaries, the peer pkg and the artifacts are, the headless
// Chromium launch, opening a demo page that joins a mesh, and reading or
// driving a page's node.
import { chromium } from 'playwright-core';
import fs from 'node:fs';
import path from 'node:path';
import { assert, until as untilEvery } from './harness.mjs';

export const ROOT = path.resolve(path.dirname(new URL(import.meta.url).pathname), '../../..');
export const PEER_DIR = process.env.PEER_DIR ?? path.join(ROOT, 'wasm/peer');
export const PKG = process.env.PEER_PKG ?? path.join(PEER_DIR, 'pkg');
export const ARTIFACTS = process.env.ARTIFACTS ?? path.join(ROOT, 'target/peer-artifacts');
fs.mkdirSync(ARTIFACTS, { recursive: true });

/** A debug build's binary `name`, or the path `env` names. */
export const bin = (env, name) => process.env[env] ?? path.join(ROOT, 'target/debug', name);

/** Waits poll faster here than the harness default: WebRTC set-up takes well under a second. */
export const until = (what, fn, timeoutMs = 30000) => untilEvery(what, fn, timeoutMs, 200);

/** The `p` quantile of an ascending array. */
export const pct = (sorted, p) => sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))];

/** Fails the setup if the peer's wasm-bindgen output is missing. */
export function needPkg() {
  if (!fs.existsSync(path.join(PKG, 'moss_wasm_peer_bg.wasm'))) throw new Error(`no peer pkg at ${PKG} (wasm/peer/scripts/build.sh)`);
}

/** Debian's Chromium, headless, with the flags measured to work here. */
export function launch() {
  return chromium.launch({ executablePath: '/usr/bin/chromium', args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync',
    // host candidates as IP addresses, not mDNS .local names
    '--disable-features=WebRtcHideLocalIpsWithMdns'] });
}

/**
 * Opens demo pages in `ctx` that join with `defaults` (signal, topic...)
 * overridden by each call's params; page errors and console errors go to
 * `errors`. `params.signal2` adds a second signal server.
 */
export function opener(ctx, origin, defaults, errors) {
  return async function open(name, params, context = ctx) {
    const page = await context.newPage();
    page.on('pageerror', e => errors.push(`${name}: ${e.message}`));
    page.on('console', m => { if (m.type() === 'error') errors.push(`${name} console: ${m.text()}`); });
    const q = new URLSearchParams({ autostart: '1', ...defaults, ...params });
    if (params.signal2) { q.delete('signal2'); q.append('signal', params.signal2); }
    await page.goto(`${origin}/demo/index.html?${q}`);
    // generous: on a loaded machine the page's wasm compile alone can take seconds
    await page.waitForFunction(() => window.joined || window.joinError, null, { timeout: 60000 });
    const err = await page.evaluate(() => window.joinError);
    assert(!err, `${name} failed to join: ${err}`);
    return page;
  };
}

export const peersOf = page => page.evaluate(() => window.moss.peers().map(p => p.peer));
export const statsOf = page => page.evaluate(() => window.moss.stats());
export const idOf = page => page.evaluate(() => window.moss.id);
export const receivedOf = page => page.evaluate(() => window.received);

/** Publishes `text` on `topic`, retrying (bounded) while no subscriber is known yet (-6). */
export function publish(page, text, topic = 'chat', timeoutMs = 15000) {
  return until(`publish "${text}"`, () => page.evaluate(([t, tp]) => {
    try { window.moss.publish(tp, t); return true; } catch (e) { if (e.code === -6) return false; throw e; }
  }, [text, topic]), timeoutMs);
}
