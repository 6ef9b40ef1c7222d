// Test servers for the explorer page tests: a static file server (the
// explorer on another origin than the gateways) and a fake "gateway" that
// relays a real gateway's documents with one chain digest altered, plus
// misbehaving paths (100 MB body, truncated JSON, another mesh, slow).
import http from 'node:http';
import fs from 'node:fs';
import path from 'node:path';

const TYPES = { '.html': 'text/html', '.js': 'text/javascript', '.css': 'text/css', '.wasm': 'application/wasm', '.json': 'application/json' };

/** Serves `root`, with `/pkg/` taken from `pkgDir`. Resolves to its origin. */
export function staticServer(root, pkgDir) {
  const server = http.createServer((req, res) => {
    const url = new URL(req.url, 'http://x');
    let p = decodeURIComponent(url.pathname);
    if (p === '/') p = '/index.html';
    const file = p.startsWith('/pkg/') ? path.join(pkgDir, p.slice(5)) : path.join(root, p);
    if (!file.startsWith(root) && !file.startsWith(pkgDir)) { res.writeHead(403).end(); return; }
    fs.readFile(file, (err, body) => {
      if (err) { res.writeHead(404).end('not found'); return; }
      res.writeHead(200, { 'content-type': TYPES[path.extname(file)] ?? 'application/octet-stream' }).end(body);
    });
  });
  return listen(server);
}

function listen(server) {
  return new Promise(resolve => server.listen(0, '127.0.0.1', () => resolve({ server, origin: `http://127.0.0.1:${server.address().port}` })));
}

async function upstream(base, p, search) {
  const r = await fetch(`${base}${p}${search}`);
  return { status: r.status, text: await r.text() };
}

const CORS = { 'access-control-allow-origin': '*', 'content-type': 'application/json', 'cache-control': 'no-cache' };

/**
 * The fake gateway relaying `realBase`. Paths: `/tamper/…` alters the
 * epoch_digest of one link (chosen on the first chain with two links, then
 * fixed; see `tampered()`); `/huge/…` answers the chain with 100 MB;
 * `/garbage/…` truncated JSON; `/othermesh/…` claims another mesh;
 * `/slow/…` answers stats after 3.5 s.
 */
export async function fakeGateway(realBase) {
  let tamperedEpoch = null;
  let hugeBytesSent = 0;
  const server = http.createServer(async (req, res) => {
    try {
      const url = new URL(req.url, 'http://x');
      const [, mode, ...rest] = url.pathname.split('/');
      const p = '/' + rest.join('/');
      if (req.method === 'OPTIONS') { res.writeHead(204, CORS).end(); return; }
      if (p === '/api/events') {
        res.writeHead(200, { ...CORS, 'content-type': 'text/event-stream' });
        const push = async () => {
          if (mode === 'slow') return;
          const s = await upstream(realBase, '/api/stats', url.search).catch(() => null);
          if (s) res.write(`event: stats\ndata: ${rewriteStats(mode, s.text)}\n\n`);
        };
        await push();
        const t = setInterval(push, 2000);
        req.on('close', () => clearInterval(t));
        return;
      }
      if (p === '/api/stats') {
        if (mode === 'slow') await new Promise(r => setTimeout(r, 3500));
        const s = await upstream(realBase, p, url.search);
        res.writeHead(s.status, CORS).end(rewriteStats(mode, s.text));
        return;
      }
      if (p === '/api/chain') {
        if (mode === 'huge') {
          res.writeHead(200, CORS);
          const chunk = Buffer.alloc(1 << 16, 0x20);
          const total = 100 << 20;
          let closed = false, sent = 0;
          res.on('close', () => { closed = true; });
          const pump = () => {
            while (!closed && sent < total) {
              sent += chunk.length;
              hugeBytesSent = Math.max(hugeBytesSent, sent);
              if (!res.write(chunk)) { res.once('drain', pump); return; }
            }
            res.end();
          };
          res.write('[');
          pump();
          return;
        }
        const s = await upstream(realBase, p, url.search);
        if (mode === 'garbage') { res.writeHead(200, CORS).end(s.text.slice(0, Math.floor(s.text.length / 2))); return; }
        let body = s.text;
        if (mode === 'tamper' && s.status === 200) {
          const links = JSON.parse(s.text);
          if (tamperedEpoch === null && links.length >= 2) tamperedEpoch = links[links.length - 2].epoch;
          for (const l of links) if (l.epoch === tamperedEpoch) l.epoch_digest = l.epoch_digest.replace(/^../, l.epoch_digest.startsWith('ff') ? '00' : 'ff');
          body = JSON.stringify(links);
        }
        res.writeHead(s.status, CORS).end(body);
        return;
      }
      res.writeHead(404, CORS).end('{"error":"no such endpoint"}');
    } catch (e) {
      if (!res.headersSent) res.writeHead(502, CORS);
      res.end(JSON.stringify({ error: String(e) }));
    }
  });
  const { origin } = await listen(server);
  return { server, origin, tampered: () => tamperedEpoch, hugeBytesSent: () => hugeBytesSent };

}

function rewriteStats(mode, text) {
  if (mode !== 'othermesh') return text;
  try { const v = JSON.parse(text); if (v.node) v.node.mesh_id = 'somebody-else'; return JSON.stringify(v); } catch { return text; }
}
