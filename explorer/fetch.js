// Reading gateways without trusting them: every body is read as a stream
// and abandoned past a byte limit, every request has a deadline, and the
// SSE stream is parsed here (not by EventSource) so one event is bounded too.

/** A response refused or abandoned, with a message for the page. */
export class GatewayError extends Error {
  constructor(kind, message) { super(message); this.kind = kind; }
}

/** Reads `response`'s body into a Uint8Array, refusing more than `max` bytes. */
export async function readLimited(response, max) {
  const declared = Number(response.headers.get('content-length'));
  if (Number.isFinite(declared) && declared > max) {
    response.body?.cancel().catch(() => {});
    throw new GatewayError('too_large', `response is ${declared} bytes, more than the ${max}-byte limit`);
  }
  const reader = response.body.getReader();
  const parts = [];
  let total = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    total += value.byteLength;
    if (total > max) {
      reader.cancel().catch(() => {});
      throw new GatewayError('too_large', `response exceeds the ${max}-byte limit (stopped reading at ${total} bytes)`);
    }
    parts.push(value);
  }
  const out = new Uint8Array(total);
  let at = 0;
  for (const p of parts) { out.set(p, at); at += p.byteLength; }
  return out;
}

/**
 * GETs `url` with a deadline and a body limit. Resolves to
 * `{bytes, ms, status}`; non-2xx, network failures and timeouts reject
 * with a GatewayError.
 */
export async function getLimited(url, { max, timeoutMs }) {
  const ctl = new AbortController();
  const timer = setTimeout(() => ctl.abort(), timeoutMs);
  const t0 = performance.now();
  try {
    let res;
    try {
      res = await fetch(url, { signal: ctl.signal, cache: 'no-store' });
    } catch (e) {
      throw new GatewayError(ctl.signal.aborted ? 'timeout' : 'down',
        ctl.signal.aborted ? `no answer within ${timeoutMs / 1000} s` : `unreachable (${e.message})`);
    }
    let bytes;
    try {
      bytes = await readLimited(res, max);
    } catch (e) {
      if (e instanceof GatewayError) throw e;
      throw new GatewayError(ctl.signal.aborted ? 'timeout' : 'down', `body not read: ${e.message}`);
    }
    if (!res.ok) {
      const text = new TextDecoder().decode(bytes.slice(0, 300));
      let msg = text;
      try { msg = JSON.parse(text).error ?? text; } catch { /* not JSON */ }
      throw new GatewayError('http', `HTTP ${res.status}: ${msg}`);
    }
    return { bytes, ms: performance.now() - t0, status: res.status };
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Follows an SSE stream with reconnects (backoff 1 s doubling to 15 s).
 * Calls `onEvent(name, dataBytes)` per event, `onState(state, detail)` with
 * 'open' | 'retry'. Returns a function that stops it.
 */
export function followEvents(url, { maxEvent, onEvent, onState }) {
  let stopped = false;
  let ctl = null;
  let delay = 1000;
  const enc = new TextEncoder();
  async function once() {
    ctl = new AbortController();
    const res = await fetch(url, { signal: ctl.signal, cache: 'no-store', headers: { accept: 'text/event-stream' } });
    if (!res.ok) { res.body?.cancel().catch(() => {}); throw new GatewayError('http', `HTTP ${res.status}`); }
    onState('open');
    delay = 1000;
    const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
    let buf = '';
    for (;;) {
      const { done, value } = await reader.read();
      if (done) throw new GatewayError('down', 'event stream closed');
      buf += value.replace(/\r\n?/g, '\n');
      let cut;
      while ((cut = buf.indexOf('\n\n')) >= 0) {
        const block = buf.slice(0, cut);
        buf = buf.slice(cut + 2);
        let name = 'message';
        const data = [];
        for (const line of block.split('\n')) {
          if (line.startsWith('event:')) name = line.slice(6).trim();
          else if (line.startsWith('data:')) data.push(line.slice(5).replace(/^ /, ''));
        }
        if (data.length) onEvent(name, enc.encode(data.join('\n')));
      }
      if (buf.length > maxEvent) {
        reader.cancel().catch(() => {});
        throw new GatewayError('too_large', `an event exceeds the ${maxEvent}-byte limit`);
      }
    }
  }
  (async () => {
    while (!stopped) {
      try { await once(); } catch (e) {
        if (stopped) break;
        onState('retry', `${e.message}; reconnecting in ${delay / 1000} s`);
      }
      await new Promise(r => setTimeout(r, delay));
      delay = Math.min(delay * 2, 15000);
    }
  })();
  return () => { stopped = true; ctl?.abort(); };
}
