// Shared by the page tests: named steps printing PASS/FAIL and counting
// them, assertions, bounded waits, and free loopback ports.
import dgram from 'node:dgram';
import net from 'node:net';

/** Steps passed and failed so far. */
export const results = { passed: 0, failed: 0 };

/** Runs one named step; a throw fails it and the next step still runs. */
export async function step(name, fn) {
  const t0 = Date.now();
  try { await fn(); results.passed++; console.log(`PASS ${name} (${((Date.now() - t0) / 1000).toFixed(1)} s)`); }
  catch (e) { results.failed++; console.log(`FAIL ${name}: ${e.stack ?? e}`); }
}

export function assert(cond, msg) { if (!cond) throw new Error(msg); }

export const sleep = ms => new Promise(r => setTimeout(r, ms));

/** Polls `fn` every `pollMs` until it returns something truthy (returned), at most `timeoutMs`. */
export async function until(what, fn, timeoutMs = 60000, pollMs = 500) {
  const end = Date.now() + timeoutMs;
  let last;
  while (Date.now() < end) {
    try { last = await fn(); if (last) return last; } catch (e) { last = e; }
    await sleep(pollMs);
  }
  throw new Error(`timed out waiting for ${what} (last: ${last instanceof Error ? last.message : JSON.stringify(last)})`);
}

/**
 * Polls the count `fn` returns every `pollMs` until it is non-zero and has
 * not changed for `quietMs` (the traffic it counts has drained), at most
 * `timeoutMs`; returns the last count. For floods whose tail is still in flight on a loaded
 * machine: a fixed sleep undercounts there, this waits for the count itself.
 */
export async function settled(fn, quietMs = 1500, timeoutMs = 60000, pollMs = 250) {
  const end = Date.now() + timeoutMs;
  let last = await fn(), since = Date.now();
  while (Date.now() < end && (!last || Date.now() - since < quietMs)) {
    await sleep(pollMs);
    const now = await fn();
    if (now !== last) { last = now; since = Date.now(); }
  }
  return last;
}

/** A loopback port free at the time of asking (`udp` or `tcp`). */
export function freePort(kind = 'tcp') {
  return new Promise((resolve, reject) => {
    if (kind === 'udp') { const s = dgram.createSocket('udp4'); s.bind(0, '127.0.0.1', () => { const p = s.address().port; s.close(() => resolve(p)); }); s.on('error', reject); }
    else { const s = net.createServer(); s.listen(0, '127.0.0.1', () => { const p = s.address().port; s.close(() => resolve(p)); }); s.on('error', reject); }
  });
}

/**
 * Ends a suite: a setup error counts as a failure, the browser and the
 * child processes are stopped, the counts printed; exits 1 on any failure.
 */
export async function finish(suite, { error, browser, children, artifacts }) {
  if (error) { results.failed++; console.log(`FAIL setup: ${error.stack ?? error}`); }
  await browser?.close().catch(() => {});
  for (const c of children) c.kill('SIGTERM');
  console.log(`${suite} page tests: ${results.passed} passed, ${results.failed} failed; artifacts in ${artifacts}`);
  process.exit(results.failed ? 1 : 0);
}
