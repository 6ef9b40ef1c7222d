// Small canvas plots drawn by hand: lines over epochs, bar histograms, the
// agreement strip. No library.

export const PALETTE = ['#1565c0', '#2e7d32', '#ad1457', '#6a1b9a', '#ef6c00', '#00838f', '#5d4037', '#455a64'];
const PAD = { l: 48, r: 10, t: 10, b: 26 };

function setup(canvas) {
  const ctx = canvas.getContext('2d');
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  ctx.font = '11px system-ui, sans-serif';
  return ctx;
}

/** Writes `message` in the middle of an empty plot. */
export function emptyPlot(canvas, message) {
  const ctx = setup(canvas);
  ctx.fillStyle = '#888';
  ctx.textAlign = 'center';
  ctx.fillText(message, canvas.width / 2, canvas.height / 2);
}

function niceMax(v) {
  if (v <= 0) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

export function fmt(v) {
  const a = Math.abs(v);
  if (a >= 1e9) return (v / 1e9).toFixed(1) + 'G';
  if (a >= 1e6) return (v / 1e6).toFixed(1) + 'M';
  if (a >= 1e3) return (v / 1e3).toFixed(1) + 'k';
  return String(Math.round(v * 100) / 100);
}

/** Lines over x (epochs): `series` = [{label, color, points: [[x, y]]}]. */
export function linePlot(canvas, series, { empty = 'no data yet' } = {}) {
  const pts = series.flatMap(s => s.points);
  if (pts.length === 0) return emptyPlot(canvas, empty);
  const ctx = setup(canvas);
  const W = canvas.width - PAD.l - PAD.r, H = canvas.height - PAD.t - PAD.b;
  let x0 = Math.min(...pts.map(p => p[0])), x1 = Math.max(...pts.map(p => p[0]));
  if (x0 === x1) { x0 -= 1; x1 += 1; }
  const yMax = niceMax(Math.max(...pts.map(p => p[1])));
  const X = x => PAD.l + (x - x0) / (x1 - x0) * W;
  const Y = y => PAD.t + H - y / yMax * H;
  ctx.strokeStyle = '#ddd'; ctx.fillStyle = '#555'; ctx.textAlign = 'right';
  for (let i = 0; i <= 4; i++) {
    const y = yMax * i / 4;
    ctx.beginPath(); ctx.moveTo(PAD.l, Y(y)); ctx.lineTo(PAD.l + W, Y(y)); ctx.stroke();
    ctx.fillText(fmt(y), PAD.l - 4, Y(y) + 4);
  }
  ctx.textAlign = 'left';
  ctx.fillText(`epoch ${x0}`, PAD.l, canvas.height - 8);
  ctx.textAlign = 'right';
  ctx.fillText(`epoch ${x1}`, PAD.l + W, canvas.height - 8);
  let legendX = PAD.l + 6;
  series.forEach(s => {
    ctx.strokeStyle = ctx.fillStyle = s.color;
    ctx.lineWidth = 2;
    ctx.beginPath();
    s.points.forEach(([x, y], j) => (j ? ctx.lineTo(X(x), Y(y)) : ctx.moveTo(X(x), Y(y))));
    ctx.stroke();
    for (const [x, y] of s.points) { ctx.beginPath(); ctx.arc(X(x), Y(y), 2.5, 0, 7); ctx.fill(); }
    ctx.textAlign = 'left';
    ctx.fillText(s.label, legendX, PAD.t + 10);
    legendX += ctx.measureText(s.label).width + 14;
  });
  ctx.lineWidth = 1;
}

/** Bars: `bars` = [{label, value, color?}]. */
export function barPlot(canvas, bars, { empty = 'no data yet' } = {}) {
  if (bars.length === 0) return emptyPlot(canvas, empty);
  const ctx = setup(canvas);
  const W = canvas.width - PAD.l - PAD.r, H = canvas.height - PAD.t - PAD.b;
  const yMax = niceMax(Math.max(...bars.map(b => b.value)));
  const bw = W / bars.length;
  ctx.textAlign = 'center';
  bars.forEach((b, i) => {
    const h = b.value / yMax * H;
    ctx.fillStyle = b.color ?? PALETTE[i % PALETTE.length];
    ctx.fillRect(PAD.l + i * bw + bw * 0.15, PAD.t + H - h, bw * 0.7, h);
    ctx.fillStyle = '#333';
    ctx.fillText(b.label, PAD.l + i * bw + bw / 2, canvas.height - 8);
    ctx.fillText(fmt(b.value), PAD.l + i * bw + bw / 2, PAD.t + H - h - 3);
  });
  ctx.fillStyle = '#555'; ctx.textAlign = 'right';
  ctx.fillText(fmt(yMax), PAD.l - 4, PAD.t + 8);
  ctx.fillText('0', PAD.l - 4, PAD.t + H);
}

/**
 * One row per gateway, one cell per epoch: green agreed, grey held by one
 * gateway only, red where that gateway dissents, blank where it has no link.
 */
export function agreementStrip(canvas, agreement, names) {
  const epochs = agreement.epochs;
  if (!epochs.length) return emptyPlot(canvas, 'no epochs to compare');
  canvas.height = 14 * names.length + 22;
  const ctx = setup(canvas);
  const left = 110, W = canvas.width - left - 10;
  const cw = Math.max(1, W / epochs.length);
  names.forEach((name, g) => {
    const dissent = new Set(agreement.dissent[g]);
    ctx.fillStyle = '#333'; ctx.textAlign = 'left';
    ctx.fillText(name.length > 17 ? name.slice(0, 16) + '…' : name, 2, 14 * g + 11);
    epochs.forEach((e, i) => {
      const holds = e.invalid.includes(g) || e.groups.some(gr => gr.includes(g));
      if (!holds) return;
      ctx.fillStyle = dissent.has(e.epoch) ? '#c62828' : e.verdict === 'single' ? '#9e9e9e' : '#43a047';
      ctx.fillRect(left + i * cw, 14 * g + 2, Math.max(1, cw - 1), 11);
    });
  });
  ctx.fillStyle = '#555';
  ctx.fillText(`epoch ${epochs[0].epoch}`, left, canvas.height - 4);
  ctx.textAlign = 'right';
  ctx.fillText(`epoch ${epochs[epochs.length - 1].epoch}`, canvas.width - 10, canvas.height - 4);
}
