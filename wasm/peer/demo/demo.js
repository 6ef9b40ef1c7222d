// The demo: join a mesh from the form (or ?mesh=&psk=&signal=&topic=&autostart=1;
// signal may repeat, or list several URLs; config: the node's config JSON),
// list the peers, show and send messages on one topic. Exposes the Moss
// object as window.moss and what arrived as window.received (for tests).
import { Moss } from '../js/moss.js';

const $ = id => document.getElementById(id);
const q = new URLSearchParams(location.search);
const form = $('join');
for (const k of ['mesh', 'psk', 'topic']) if (q.has(k)) form.elements[k].value = q.get(k);
if (q.has('signal')) form.elements.signal.value = q.getAll('signal').join(' ');
window.received = [];
const short = id => id.slice(0, 12);

function line(html, cls) {
  const li = document.createElement('li');
  if (cls) li.className = cls;
  li.append(...html);
  $('log').append(li);
  $('log').scrollTop = $('log').scrollHeight;
}

function showPeers(moss) {
  const peers = moss.peers();
  $('npeers').textContent = peers.length;
  $('peers').replaceChildren(...peers.map(p => {
    const li = document.createElement('li');
    li.className = 'id';
    li.textContent = `${short(p.peer)}… ${p.outbound ? '→' : '←'} channel ${p.channel}`;
    return li;
  }));
}

async function join() {
  const f = form.elements;
  const t0 = performance.now();
  const moss = await Moss.create({
    meshId: f.mesh.value, psk: f.psk.value || undefined, signal: f.signal.value.split(/[\s,]+/).filter(Boolean),
    room: q.get('room') ?? undefined, config: q.get('config') ?? undefined,
  });
  window.moss = moss;
  const topic = f.topic.value;
  form.querySelectorAll('input,button').forEach(e => { e.disabled = true; });
  $('me').textContent = moss.id;
  $('status').textContent = `mesh ${f.mesh.value} · room ${moss.room.slice(0, 12)}…`;
  moss.on('peerjoin', p => {
    window.firstSessionMs ??= performance.now() - t0;
    line([`${short(p.peer)}… joined`], 'sys');
    showPeers(moss);
  });
  moss.on('peerleave', p => { line([`${short(p.peer)}… left (${p.reason})`], 'sys'); showPeers(moss); });
  moss.subscribe(topic, m => {
    const text = new TextDecoder().decode(m.data);
    window.received.push({ from: m.from, text });
    const from = document.createElement('span');
    from.className = 'from';
    from.textContent = short(m.from);
    line([from, text]);
  });
  const say = $('say');
  say.querySelectorAll('input,button').forEach(e => { e.disabled = false; });
  say.onsubmit = ev => {
    ev.preventDefault();
    const text = say.elements.text.value;
    if (!text) return;
    try {
      moss.publish(topic, text);
      const me = document.createElement('span');
      me.className = 'from';
      me.textContent = 'me';
      line([me, text]);
      say.elements.text.value = '';
    } catch (e) { line([`not sent: ${e.message} (code ${e.code})`], 'sys'); }
  };
  addEventListener('pagehide', () => moss.close());
  window.joined = true;
}

form.onsubmit = ev => { ev.preventDefault(); join().catch(e => { $('status').textContent = `error: ${e.message}`; window.joinError = String(e); }); };
if (q.get('autostart') === '1') form.requestSubmit();
