// The topology *simulation*: a graph with the mesh's aggregate shape (node
// count, NAT and degree histograms) laid out deterministically from the
// epoch digest. It never sees an address or a peer id, because gateways
// serve none; the same digest and histograms always give the same picture.

const DEGREE_RANGES = { '0': [0, 0], '1-2': [1, 2], '3-5': [3, 5], '6-10': [6, 10], '11-20': [11, 20], '21+': [21, 30] };
const NAT_COLORS = { public: '#2e7d32', full_cone: '#1565c0', restricted_cone: '#00838f', port_restricted_cone: '#6a1b9a', symmetric: '#c62828', cgnat: '#ef6c00', unknown: '#757575' };
/** Most nodes drawn; larger meshes are drawn at this scale. */
export const MAX_DRAWN = 160;

/** xoshiro128** seeded from a 64-hex-digit digest (unparsable digits count as zero). */
export function rngFromDigest(hex) {
  const s = new Uint32Array(4);
  const mix = x => { x = Math.imul(x ^ (x >>> 16), 0x85ebca6b); x = Math.imul(x ^ (x >>> 13), 0xc2b2ae35); return (x ^ (x >>> 16)) >>> 0; };
  // Fold all 32 digest bytes into the 4 state words, then scramble each.
  for (let i = 0; i < 8; i++) s[i % 4] ^= parseInt(hex.slice(i * 8, i * 8 + 8), 16) >>> 0;
  for (let i = 0; i < 4; i++) s[i] = mix((s[i] + Math.imul(i + 1, 0x9e3779b9)) >>> 0);
  if (!(s[0] | s[1] | s[2] | s[3])) s[0] = 1;
  return () => {
    const r = Math.imul(((Math.imul(s[1], 5) << 7) | (Math.imul(s[1], 5) >>> 25)), 9) >>> 0;
    const t = s[1] << 9;
    s[2] ^= s[0]; s[3] ^= s[1]; s[1] ^= s[2]; s[0] ^= s[3]; s[2] ^= t;
    s[3] = (s[3] << 11) | (s[3] >>> 21);
    return r / 4294967296;
  };
}

/** Splits `n` over the histogram's buckets in proportion (largest remainder). */
function apportion(hist, n) {
  const entries = Object.entries(hist ?? {}).filter(([, v]) => v > 0).sort(([a], [b]) => (a < b ? -1 : 1));
  const total = entries.reduce((s, [, v]) => s + v, 0);
  if (!total) return [];
  const raw = entries.map(([k, v]) => [k, (v / total) * n]);
  const out = raw.map(([k, x]) => [k, Math.floor(x), x - Math.floor(x)]);
  let left = n - out.reduce((s, [, c]) => s + c, 0);
  [...out].sort((a, b) => b[2] - a[2] || (a[0] < b[0] ? -1 : 1)).forEach(o => { if (left > 0) { o[1]++; left--; } });
  return out.flatMap(([k, c]) => Array(c).fill(k));
}

function shuffle(a, rnd) {
  for (let i = a.length - 1; i > 0; i--) { const j = Math.floor(rnd() * (i + 1)); [a[i], a[j]] = [a[j], a[i]]; }
  return a;
}

/** Builds the simulated graph: `{nodes: [{x, y, nat, degree}], edges: [[i, j]]}`. */
export function simulate({ digest, nodeCount, natHistogram, degreeHistogram }) {
  const rnd = rngFromDigest(digest);
  const n = Math.max(1, Math.min(MAX_DRAWN, nodeCount | 0));
  const nats = shuffle(apportion(natHistogram, n), rnd);
  const buckets = shuffle(apportion(degreeHistogram, n), rnd);
  const nodes = Array.from({ length: n }, (_, i) => {
    const [lo, hi] = DEGREE_RANGES[buckets[i]] ?? [2, 4];
    const angle = (i / n) * 2 * Math.PI;
    return { nat: nats[i] ?? 'unknown', degree: Math.min(n - 1, lo + Math.floor(rnd() * (hi - lo + 1))),
      x: Math.cos(angle) * 0.8 + (rnd() - 0.5) * 0.2, y: Math.sin(angle) * 0.8 + (rnd() - 0.5) * 0.2 };
  });
  const stubs = shuffle(nodes.flatMap((nd, i) => Array(nd.degree).fill(i)), rnd);
  const seen = new Set();
  const edges = [];
  for (let k = 0; k + 1 < stubs.length; k += 2) {
    const [a, b] = [Math.min(stubs[k], stubs[k + 1]), Math.max(stubs[k], stubs[k + 1])];
    if (a !== b && !seen.has(a * 100000 + b)) { seen.add(a * 100000 + b); edges.push([a, b]); }
  }
  // Pairing drops self-loops and repeats: give each node that wanted a
  // neighbour and lost them all one, so degree buckets above 0 stay visible.
  const touched = new Set(edges.flat());
  nodes.forEach((nd, i) => {
    if (nd.degree === 0 || touched.has(i) || n < 2) return;
    const j = (i + 1 + Math.floor(rnd() * (n - 1))) % n;
    edges.push([Math.min(i, j), Math.max(i, j)]);
    touched.add(i); touched.add(j);
  });
  // Fruchterman–Reingold, fixed iteration count: deterministic.
  const k = Math.sqrt(4 / n);
  for (let it = 0, temp = 0.1; it < 120; it++, temp *= 0.97) {
    const dx = new Float64Array(n), dy = new Float64Array(n);
    for (let i = 0; i < n; i++) for (let j = i + 1; j < n; j++) {
      const ex = nodes[i].x - nodes[j].x, ey = nodes[i].y - nodes[j].y;
      const d2 = Math.max(1e-6, ex * ex + ey * ey), f = (k * k) / d2;
      dx[i] += ex * f; dy[i] += ey * f; dx[j] -= ex * f; dy[j] -= ey * f;
    }
    for (const [a, b] of edges) {
      const ex = nodes[a].x - nodes[b].x, ey = nodes[a].y - nodes[b].y;
      const d = Math.max(1e-3, Math.hypot(ex, ey)), f = d / k;
      dx[a] -= ex * f; dy[a] -= ey * f; dx[b] += ex * f; dy[b] += ey * f;
    }
    for (let i = 0; i < n; i++) {
      dx[i] -= nodes[i].x * 0.05; dy[i] -= nodes[i].y * 0.05;
      const len = Math.max(1e-9, Math.hypot(dx[i], dy[i])), step = Math.min(len, temp);
      nodes[i].x += (dx[i] / len) * step; nodes[i].y += (dy[i] / len) * step;
    }
  }
  return { nodes, edges };
}

/** Draws the simulation for one epoch report onto `canvas`. */
export function drawTopology(canvas, report) {
  const ctx = canvas.getContext('2d');
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  ctx.font = '11px system-ui, sans-serif';
  if (!report) { ctx.fillStyle = '#888'; ctx.fillText('no epoch report yet', 20, 30); return null; }
  const g = simulate({ digest: report.epoch_digest, nodeCount: report.node_count_estimate,
    natHistogram: report.nat_histogram, degreeHistogram: report.degree_histogram });
  const xs = g.nodes.map(p => p.x), ys = g.nodes.map(p => p.y);
  const [x0, x1, y0, y1] = [Math.min(...xs), Math.max(...xs), Math.min(...ys), Math.max(...ys)];
  const s = Math.min((canvas.width - 40) / Math.max(1e-6, x1 - x0), (canvas.height - 50) / Math.max(1e-6, y1 - y0));
  const X = x => 20 + (x - x0) * s, Y = y => 30 + (y - y0) * s;
  ctx.strokeStyle = 'rgba(80,80,80,0.35)';
  for (const [a, b] of g.edges) { ctx.beginPath(); ctx.moveTo(X(g.nodes[a].x), Y(g.nodes[a].y)); ctx.lineTo(X(g.nodes[b].x), Y(g.nodes[b].y)); ctx.stroke(); }
  for (const p of g.nodes) { ctx.fillStyle = NAT_COLORS[p.nat] ?? '#757575'; ctx.beginPath(); ctx.arc(X(p.x), Y(p.y), 4, 0, 7); ctx.fill(); }
  const legend = [...new Set(g.nodes.map(p => p.nat))].sort();
  legend.forEach((nat, i) => { ctx.fillStyle = NAT_COLORS[nat] ?? '#757575'; ctx.fillRect(8 + i * 92, 8, 9, 9); ctx.fillStyle = '#333'; ctx.fillText(nat, 20 + i * 92, 16); });
  ctx.fillStyle = '#555';
  ctx.fillText(`seed ${report.epoch_digest.slice(0, 12)}… · ${g.nodes.length} nodes, ${g.edges.length} edges` +
    (report.degree_histogram ? '' : ' · histograms hidden below k-anonymity'), 8, canvas.height - 6);
  return g;
}
