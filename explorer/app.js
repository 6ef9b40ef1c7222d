// The Moss explorer: reads one or more gateways, verifies their chains with
// moss-telemetry's own code compiled to wasm, and shows the mesh live.
import init, { Verifier } from './pkg/moss_wasm.js';
import { GatewayError, getLimited, followEvents } from './fetch.js';
import { linePlot, barPlot, emptyPlot, agreementStrip, PALETTE, fmt } from './plots.js';
import { drawTopology } from './topology.js';

/** Body limits, matching the verifier's own caps (moss_telemetry::audit). */
const LIMITS = { chain: 16 << 20, stats: 1 << 20, event: 1 << 20 };
const SLOW_MS = 3000, TIMEOUT_MS = 10000, POLL_MS = 4000, CHAIN_LINKS = 1024;
const DEGREE_ORDER = ['0', '1-2', '3-5', '6-10', '11-20', '21+'];
const $ = id => document.getElementById(id);

const params = new URLSearchParams(location.search);
const meshId = (params.get('meshid') ?? '').trim();
const gatewayList = (params.get('gw') ?? (location.protocol.startsWith('http') ? location.origin : ''))
  .split(/[\s,]+/).filter(Boolean);

function isLoopback(host) {
  const h = host.replace(/^\[|\]$/g, '');
  return h === 'localhost' || h.endsWith('.localhost') || h === '::1' || /^127\.\d+\.\d+\.\d+$/.test(h);
}

/** Parses a gateway URL; http is accepted for loopback hosts only. */
function gatewayBase(text) {
  let u;
  try { u = new URL(/^[a-z]+:\/\//i.test(text) ? text : `http://${text}`); } catch { throw new Error(`not a URL: ${text}`); }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new Error(`${text}: only http(s) gateways`);
  if (u.protocol === 'http:' && !isLoopback(u.hostname)) throw new Error(`${text}: remote gateways must be https (plain http only for localhost)`);
  u.pathname = u.pathname.replace(/\/+$/, '') + '/';
  u.search = ''; u.hash = '';
  return u;
}

function api(gw, path, extra = {}) {
  const u = new URL(path.replace(/^\//, ''), gw.base);
  if (meshId) u.searchParams.set('meshid', meshId);
  for (const [k, v] of Object.entries(extra)) u.searchParams.set(k, v);
  return u.toString();
}

const gateways = [];
let verifier = null;
let agreement = null;

function setState(gw, state, detail = '') {
  gw.state = state; gw.detail = detail;
  schedule();
}

function failure(gw, e) {
  const kind = e instanceof GatewayError ? e.kind : 'error';
  setState(gw, kind === 'timeout' ? 'slow' : kind === 'down' ? 'down' : 'error', e.message);
}

function acceptStats(gw, bytes, ms) {
  const r = JSON.parse(verifier.checkStats(gw.slot, bytes));
  if (!r.ok) { gw.statsError = r.error.message; setState(gw, 'error', `stats: ${r.error.message}`); return; }
  gw.statsError = null;
  gw.report = r.stats.report;
  gw.meshId = r.stats.mesh_id;
  gw.issues = r.issues;
  const wanted = meshId || gateways.find(g => g.meshId)?.meshId;
  if (wanted && gw.meshId && gw.meshId !== wanted) {
    verifier.clearChain(gw.slot);
    gw.audit = null;
    setState(gw, 'other-mesh', `serves mesh "${gw.meshId}", not "${wanted}"`);
    return;
  }
  const rep = gw.report;
  if (rep) {
    gw.history.set(rep.epoch, { nodes: rep.node_count_estimate, kOk: rep.k_anon_ok,
      bwIn: rep.bandwidth_in_total, bwOut: rep.bandwidth_out_total, chain: gw.audit?.links ?? 0 });
    while (gw.history.size > 500) gw.history.delete(gw.history.keys().next().value);
  }
  if (ms != null) gw.latency.stats = ms;
  if (!gw.chainError) healthy(gw);
}

/** Live, or slow when the last stats or chain answer took over SLOW_MS. */
function healthy(gw) {
  const worst = Math.max(gw.latency.stats, gw.latency.chain);
  if (worst > SLOW_MS) setState(gw, 'slow', `answered in ${(worst / 1000).toFixed(1)} s`);
  else setState(gw, 'live', '');
}

async function pollChain(gw) {
  try {
    const { bytes, ms } = await getLimited(api(gw, 'api/chain', { limit: CHAIN_LINKS }), { max: LIMITS.chain, timeoutMs: TIMEOUT_MS });
    if (gw.state === 'other-mesh') return;
    const r = JSON.parse(verifier.setChain(gw.slot, bytes));
    if (r.ok) { gw.audit = r.audit; gw.chainError = null; } else { gw.audit = null; gw.chainError = r.error.message; }
    const now = gw.report && gw.history.get(gw.report.epoch);
    if (now) now.chain = gw.audit?.links ?? 0;
    agreement = JSON.parse(verifier.agreement()).agreement;
    gw.latency.chain = ms;
    if (gw.chainError) setState(gw, 'error', `chain: ${gw.chainError}`);
    else healthy(gw);
  } catch (e) {
    verifier.clearChain(gw.slot);
    gw.audit = null;
    gw.chainError = e.message;
    agreement = JSON.parse(verifier.agreement()).agreement;
    failure(gw, e);
  }
}

async function pollStats(gw) {
  try {
    const { bytes, ms } = await getLimited(api(gw, 'api/stats'), { max: LIMITS.stats, timeoutMs: TIMEOUT_MS });
    acceptStats(gw, bytes, ms);
  } catch (e) { failure(gw, e); }
}

function startGateway(gw) {
  pollStats(gw).then(() => pollChain(gw));
  gw.timer = setInterval(() => pollChain(gw), POLL_MS);
  gw.stopEvents = followEvents(api(gw, 'api/events'), {
    maxEvent: LIMITS.event,
    onEvent: (name, bytes) => { if (name === 'stats') acceptStats(gw, bytes, null); },
    onState: (s, detail) => {
      gw.events = s;
      if (s === 'retry') { if (gw.state === 'live') setState(gw, 'down', `event stream: ${detail}`); else { gw.detail ||= detail; schedule(); } }
      else pollStats(gw);
    },
  });
}

let pending = false;
function schedule() {
  if (pending) return;
  pending = true;
  requestAnimationFrame(() => { pending = false; render(); });
}

function short(hex) { return hex ? `${hex.slice(0, 10)}…` : '?'; }

function breakText(b) {
  switch (b.kind) {
    case 'digest_mismatch': return `epoch ${b.epoch}: epoch_digest does not recompute — expected ${short(b.expected)} got ${short(b.got)}`;
    case 'broken_link': return `epoch ${b.epoch}: prev_digest does not continue the chain — expected ${short(b.expected)} got ${short(b.got)}`;
    case 'epoch_not_increasing': return `epoch ${b.epoch} after epoch ${b.previous}: the chain loops or is out of order`;
    default: return JSON.stringify(b);
  }
}

function ranges(epochs) {
  const out = [];
  for (const e of epochs) {
    const last = out[out.length - 1];
    if (last && e === last[1] + 1) last[1] = e; else out.push([e, e]);
  }
  return out.map(([a, b]) => (a === b ? `${a}` : `${a}–${b}`)).join(', ');
}

function el(tag, attrs = {}, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) (k === 'class' ? (e.className = v) : e.setAttribute(k, v));
  for (const k of kids) e.append(k);
  return e;
}

function renderPanel(gw, i) {
  const a = gw.audit;
  const dissent = agreement?.dissent?.[gw.slot] ?? [];
  const card = el('div', { class: 'card gw', 'data-gateway': String(i), 'data-state': gw.state,
    'data-verified-through': a?.verified_through ?? '', 'data-break-epochs': (a?.breaks ?? []).map(b => b.epoch).join(','),
    'data-dissent': dissent.join(','), 'data-mesh': gw.meshId ?? '' });
  const title = el('h2', {}, el('span', { class: 'url', style: `color:${PALETTE[i % PALETTE.length]}` }, gw.name), el('span', { class: `badge ${gw.state}` }, gw.state));
  card.append(title);
  if (gw.detail) card.append(el('p', { class: 'hint' }, gw.detail));
  const rep = gw.report;
  card.append(el('p', {}, `mesh ${gw.meshId ?? '?'}` + (rep ? ` · epoch ${rep.epoch} · ~${rep.node_count_estimate} nodes · ${rep.contributors} contributors · k-anon ${rep.k_anon_ok ? 'ok' : 'not reached'}` : ' · telemetry off or not read yet')));
  if (a) {
    if (a.break_count === 0) {
      card.append(el('p', { class: 'verdict ok' }, a.links ? `✓ chain verified through epoch ${a.verified_through} (${a.links} links from epoch ${a.first_epoch}${a.unrecomputed ? `, ${a.unrecomputed} without state commitment: continuity only` : ''})` : '✓ empty chain (no epoch finalized yet)'));
    } else {
      card.append(el('p', { class: 'verdict broken' }, `✗ chain broken at epoch ${a.breaks[0].epoch}` + (a.verified_through != null ? ` (verified through epoch ${a.verified_through})` : '') + ` — ${a.break_count} break${a.break_count > 1 ? 's' : ''}`));
      card.append(el('ul', { class: 'breaks' }, ...a.breaks.slice(0, 8).map(b => el('li', { 'data-epoch': String(b.epoch) }, breakText(b)))));
    }
    if (a.gaps.length) card.append(el('p', { class: 'hint' }, `gaps (node finalized nothing): ${a.gaps.map(g => `${g.after + 1}–${g.before - 1}`).join(', ')}`));
  } else if (gw.chainError) {
    card.append(el('p', { class: 'verdict broken' }, `✗ chain not verified: ${gw.chainError}`));
  }
  for (const is of gw.issues ?? []) card.append(el('p', { class: 'dissent' }, `snapshot: ${is.message}`));
  if (dissent.length) card.append(el('p', { class: 'dissent' }, `disagrees with the other gateways at epoch${dissent.length > 1 ? 's' : ''} ${ranges(dissent)}`));
  return card;
}

function renderAgreement() {
  const names = gateways.map(g => g.name);
  const card = $('agreement-card');
  const detail = $('agreement-detail');
  detail.replaceChildren();
  if (!agreement || !agreement.epochs.length) {
    $('agreement-summary').textContent = 'No chains yet.';
    emptyPlot($('agreement-strip'), 'no epochs to compare');
    return;
  }
  const agreed = agreement.epochs.filter(e => e.verdict === 'agreed').map(e => e.epoch);
  const diverged = agreement.epochs.filter(e => e.verdict === 'diverged');
  card.dataset.agreed = agreed.join(',');
  card.dataset.diverged = diverged.map(e => e.epoch).join(',');
  const live = gateways.filter(g => g.audit).length;
  $('agreement-summary').textContent = (agreed.length ? `${live} gateways agree on epochs ${ranges(agreed)}.` : 'No epoch is held by two verified gateways yet.') +
    (diverged.length ? ` Diverged at epoch${diverged.length > 1 ? 's' : ''} ${ranges(diverged.map(e => e.epoch))}.` : ' No divergence.');
  for (const e of diverged.slice(0, 10)) {
    const parts = e.groups.map((gr, k) => `${k === 0 && e.groups.length > 1 && gr.length > (e.groups[1]?.length ?? 0) ? 'majority' : 'group'} {${gr.map(g => names[g]).join(', ')}}`);
    if (e.invalid.length) parts.push(`link does not verify at {${e.invalid.map(g => names[g]).join(', ')}}`);
    detail.append(el('li', { class: 'dissent', 'data-epoch': String(e.epoch) }, `epoch ${e.epoch}: ${parts.join('; ')}`));
  }
  const histories = agreement.epochs.filter(e => e.verdict === 'agreed');
  if (histories.length && histories.some(e => !e.same_history)) detail.append(el('li', {}, 'Some gateways started their chains at different epochs: they agree on the states, their digests differ from the first shared epoch on.'));
  agreementStrip($('agreement-strip'), agreement, names);
}

function renderPlots() {
  const series = (f) => gateways.map((g, i) => ({ label: g.name.replace(/^https?:\/\//, ''), color: PALETTE[i % PALETTE.length],
    points: [...g.history].filter(([, h]) => f(h) != null).map(([e, h]) => [e, f(h)]).sort((a, b) => a[0] - b[0]) }));
  linePlot($('plot-nodes'), series(h => h.nodes));
  linePlot($('plot-chain'), series(h => h.chain), { empty: 'no chain yet' });
  const main = gateways.find(g => g.state === 'live' && g.report) ?? gateways.find(g => g.report);
  const bw = main ? [...main.history].filter(([, h]) => h.kOk && h.bwIn != null).sort((a, b) => a[0] - b[0]) : [];
  linePlot($('plot-bandwidth'), [
    { label: 'in', color: PALETTE[0], points: bw.map(([e, h]) => [e, h.bwIn]) },
    { label: 'out', color: PALETTE[2], points: bw.map(([e, h]) => [e, h.bwOut]) }], { empty: 'hidden: fewer contributors than k_anon' });
  $('bandwidth-note').textContent = main?.report && !main.report.k_anon_ok ? 'Current epoch below the k-anonymity threshold: bandwidth and histograms are withheld.' : main ? `from ${main.name}` : '';
  const rep = main?.report;
  const nat = Object.entries(rep?.nat_histogram ?? {}).map(([label, value]) => ({ label, value }));
  barPlot($('plot-nat'), nat, { empty: rep ? 'hidden below k-anonymity' : 'no data yet' });
  const deg = DEGREE_ORDER.map(label => ({ label, value: rep?.degree_histogram?.[label] ?? 0 }));
  if (rep?.degree_histogram) barPlot($('plot-degree'), deg); else emptyPlot($('plot-degree'), rep ? 'hidden below k-anonymity' : 'no data yet');
  const topo = drawTopology($('topology'), rep);
  $('topology').dataset.seed = rep?.epoch_digest ?? '';
  $('topology').dataset.nodes = topo ? String(topo.nodes.length) : '';
}

function render() {
  $('gateway-panels').replaceChildren(...gateways.map(renderPanel));
  renderAgreement();
  renderPlots();
  document.body.dataset.ready = 'true';
}

function knownMeshes() {
  let saved = [];
  try { saved = JSON.parse(localStorage.getItem('moss.meshes') ?? '[]'); } catch { /* ignore */ }
  const list = [...new Set(['global', 'local', ...saved, ...(meshId ? [meshId] : [])])].slice(0, 20);
  try { localStorage.setItem('moss.meshes', JSON.stringify(list.filter(m => m !== 'global' && m !== 'local'))); } catch { /* private mode */ }
  $('meshes').replaceChildren(...list.map(m => el('option', { value: m })));
}

async function main() {
  $('gateways').value = gatewayList.join(', ');
  $('meshid').value = meshId;
  knownMeshes();
  $('controls').addEventListener('submit', ev => {
    ev.preventDefault();
    const q = new URLSearchParams();
    const gws = $('gateways').value.trim(), m = $('meshid').value.trim();
    if (gws) q.set('gw', gws);
    if (m) q.set('meshid', m);
    location.search = q.toString();
  });
  const bad = [];
  for (const text of gatewayList) {
    try {
      const base = gatewayBase(text);
      if (gateways.some(g => g.base.href === base.href)) continue;
      gateways.push({ name: base.href.replace(/\/$/, ''), base, slot: gateways.length, state: 'connecting', detail: '', history: new Map(), audit: null, latency: { stats: 0, chain: 0 } });
    } catch (e) { bad.push(e.message); }
  }
  $('notice').textContent = [
    ...bad,
    gateways.length ? '' : 'Enter one or more gateway URLs (e.g. http://127.0.0.1:8787) and press Open.',
    meshId ? `Mesh "${meshId}" (sent as ?meshid= to every gateway).` : '',
  ].filter(Boolean).join(' ');
  try {
    await init();
  } catch (e) {
    $('notice').textContent = `The wasm verifier did not load: ${e.message}`;
    document.body.dataset.ready = 'error';
    return;
  }
  verifier = new Verifier(gateways.length);
  gateways.forEach(startGateway);
  render();
}

window.mossExplorer = { gateways: () => gateways.map(({ name, state, detail, audit, meshId: m }) => ({ name, state, detail, audit, meshId: m })), agreement: () => agreement, fmt };
main();
