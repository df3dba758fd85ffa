// Portcullis dashboard: polls the admin API's JSON routes and renders them.
//
// Every value is written with textContent (never as HTML): numbers and names come from SIP
// headers that callers control. The admin token lives in sessionStorage only and goes out
// in the Authorization header of same-origin requests, never in a URL.
'use strict';

(() => {
  const POLL_MS = 2000;
  const KEY = 'portcullis.admin.token';
  const $ = (id) => document.getElementById(id);

  let token = sessionStorage.getItem(KEY) || '';
  let tokenRequired = true;
  let timer = null;
  let busy = false;
  // Bumped on every sign-in and sign-out: a poll that started under another session throws
  // its answers away, so a reply still in flight at sign-out never shows the data again.
  let session = 0;

  // ---- DOM helpers -------------------------------------------------------------------

  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }

  function td(text, cls) {
    return el('td', cls, text === undefined || text === null ? '' : text);
  }

  // A cell with a first line and muted lines under it.
  function stack(lines, cls) {
    const c = el('td', cls);
    lines.filter((l) => l !== '').forEach((l, i) => c.appendChild(el('span', i === 0 ? '' : 'sub', l)));
    return c;
  }

  function fill(tbody, rows) {
    tbody.replaceChildren(...rows);
  }

  function setText(id, text) {
    $(id).textContent = text === undefined || text === null ? '' : String(text);
  }

  function message(text, isError) {
    const m = $('message');
    m.textContent = text || '';
    m.className = isError ? 'error' : '';
  }

  // ---- formatting --------------------------------------------------------------------

  function duration(s) {
    s = Math.max(0, Math.floor(s));
    const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), r = s % 60;
    const two = (n) => String(n).padStart(2, '0');
    return h > 0 ? `${h}:${two(m)}:${two(r)}` : `${m}:${two(r)}`;
  }

  function time(ms) {
    if (!ms) return '';
    const d = new Date(ms);
    return d.toLocaleTimeString([], { hour12: false });
  }

  function dateTime(ms) {
    if (!ms) return '';
    const d = new Date(ms);
    return `${d.toLocaleDateString()} ${d.toLocaleTimeString([], { hour12: false })}`;
  }

  function ago(ms) {
    if (!ms) return 'never';
    return `${duration((Date.now() - ms) / 1000)} ago`;
  }

  function num(x, digits) {
    if (x === undefined || x === null) return '-';
    return Number(x).toFixed(digits);
  }

  function rate(x) {
    if (x === undefined || x === null) return '-';
    if (x >= 1e6) return `${(x / 1e6).toFixed(1)} M`;
    if (x >= 1e3) return `${(x / 1e3).toFixed(1)} k`;
    return x.toFixed(x < 10 ? 1 : 0);
  }

  function bits(x) {
    if (x >= 1e9) return `${(x / 1e9).toFixed(2)} Gbit/s`;
    if (x >= 1e6) return `${(x / 1e6).toFixed(2)} Mbit/s`;
    if (x >= 1e3) return `${(x / 1e3).toFixed(1)} kbit/s`;
    return `${Math.round(x)} bit/s`;
  }

  function trunks(inbound, outbound) {
    return `${inbound || '-'} \u2192 ${outbound || '-'}`;
  }

  // ---- the API -----------------------------------------------------------------------

  async function api(method, path) {
    const headers = { Accept: 'application/json' };
    if (token) headers.Authorization = `Bearer ${token}`;
    const r = await fetch(path, { method, headers, cache: 'no-store', credentials: 'omit' });
    let body = null;
    try { body = await r.json(); } catch (_) { body = null; }
    return { status: r.status, body };
  }

  class AuthError extends Error {}

  async function get(path) {
    const r = await api('GET', path);
    if (r.status === 401) throw new AuthError('unauthorized');
    if (r.status !== 200) throw new Error(`${path}: HTTP ${r.status}`);
    return r.body;
  }

  // ---- sign-in -----------------------------------------------------------------------

  function canAct() {
    return token !== '';
  }

  function showAuth() {
    const signedIn = token !== '';
    $('signin').hidden = signedIn;
    $('signout').hidden = !signedIn;
    $('reload').hidden = !canAct();
    if (signedIn) setText('mode', 'signed in: calls can be ended and the configuration reloaded');
    else if (tokenRequired) setText('mode', 'sign in with the admin token');
    else setText('mode', 'read-only: the admin API has no token; sign in to end calls or reload');
  }

  function signOut(text) {
    session += 1;
    token = '';
    sessionStorage.removeItem(KEY);
    showAuth();
    if (tokenRequired) {
      $('main').hidden = true;
      stop();
    }
    message(text || '', Boolean(text));
  }

  // ---- rendering ---------------------------------------------------------------------

  function legCell(leg) {
    if (!leg) return td('');
    const lines = [`${leg.codec || 'no SDP'} \u00b7 ${leg.srtp ? 'SRTP' : 'RTP'}`];
    if (leg.quality) lines.push(`MOS ${num(leg.quality.mos, 2)} \u00b7 loss ${num(leg.quality.loss_pct, 1)}% \u00b7 jitter ${num(leg.jitter_ms, 1)} ms`);
    else lines.push('MOS - (no RTP yet)');
    lines.push(`in ${leg.rx_packets} pkts \u00b7 out ${leg.tx_packets} pkts`);
    if (leg.srtp) lines.push(leg.srtp);
    return stack(lines, 'leg');
  }

  function endButton(id) {
    const b = el('button', 'danger', 'End call');
    b.type = 'button';
    b.dataset.call = String(id);
    let armed = null;
    b.addEventListener('click', async () => {
      if (!armed) {
        b.textContent = 'Confirm end';
        b.className = 'confirm';
        armed = setTimeout(() => { armed = null; b.textContent = 'End call'; b.className = 'danger'; }, 5000);
        return;
      }
      clearTimeout(armed);
      armed = null;
      b.disabled = true;
      try {
        const r = await api('DELETE', `/api/v1/calls/${encodeURIComponent(id)}`);
        if (r.status === 200) message(`Call ${id} ended.`);
        else if (r.status === 401) signOut('The token was refused.');
        else message(`Call ${id} not ended: ${(r.body && r.body.error) || `HTTP ${r.status}`}`, true);
      } catch (e) {
        message(`Call ${id} not ended: ${e.message}`, true);
      }
      refresh();
    });
    return b;
  }

  function renderCalls(calls) {
    const rows = calls.map((c) => {
      const tr = el('tr');
      tr.dataset.call = String(c.id);
      const m = c.media || {};
      tr.append(
        td(c.id, 'num'), td(c.calling, 'calling'), td(c.called, 'called'),
        td(trunks(c.inbound_trunk, c.outbound_trunk)),
        td(c.answered ? 'answered' : 'ringing', c.answered ? 'state-ok' : 'state-warn'),
        td(duration(c.duration_s), 'num'),
        c.media ? legCell(m.a) : td('media bypassed'),
        c.media ? legCell(m.b) : td(''),
      );
      const action = el('td');
      if (canAct()) action.appendChild(endButton(c.id));
      tr.appendChild(action);
      return tr;
    });
    fill($('calls').tBodies[0], rows);
    $('calls-empty').hidden = calls.length > 0;
    setText('calls-count', `(${calls.length})`);
  }

  function renderTrunks(list) {
    fill($('trunks').tBodies[0], list.map((t) => {
      const h = t.health || { state: 'unknown' };
      const tr = el('tr');
      let health = h.state.replace('_', ' ');
      if (h.held_off_s) health += ` (${duration(h.held_off_s)} left)`;
      if (h.failures_in_row) health += ` \u00b7 ${h.failures_in_row} in a row`;
      tr.append(
        td(t.name), td(t.address), td(t.transport), td(t.media),
        td(t.max_calls ? `${t.active_calls} / ${t.max_calls}` : t.active_calls, 'num'),
        td(health, `state-${h.state}`),
        stack([h.last_attempt_ms ? ago(h.last_attempt_ms) : 'no attempt', h.last_status ? `last status ${h.last_status}` : '']),
      );
      return tr;
    }));
  }

  function renderTeams(t) {
    $('teams-section').hidden = !t.configured;
    if (!t.configured) return;
    setText('teams-fqdn', t.sbc_fqdn ? `(SBC ${t.sbc_fqdn})` : '');
    fill($('teams').tBodies[0], t.proxies.map((p) => {
      const tr = el('tr');
      tr.append(
        td(p.proxy), td(p.address), td(p.state, `state-${p.state}`), td(p.selected ? 'yes' : ''),
        td(p.misses, 'num'), td(p.held_off_s ? duration(p.held_off_s) : ''),
        td(p.last_answer_s === null || p.last_answer_s === undefined ? 'never' : `${duration(p.last_answer_s)} ago (${p.last_status})`),
      );
      return tr;
    }));
  }

  function renderWorkers(list) {
    fill($('workers').tBodies[0], list.map((w) => {
      const tr = el('tr');
      tr.append(
        td(w.worker, 'num'), td(w.core === null || w.core === undefined ? '-' : w.core, 'num'),
        td(w.backend || '-'), td(w.active_pairs, 'num'),
        td(w.cpu_pct === null || w.cpu_pct === undefined ? '-' : `${num(w.cpu_pct, 1)}%`, 'num'),
        td(rate(w.rx_pps), 'num'), td(rate(w.tx_pps), 'num'), td(bits(w.rx_bps), 'num'),
        td(rate(w.drops_per_s), 'num'),
      );
      return tr;
    }));
  }

  function renderFailures(list) {
    fill($('failures').tBodies[0], list.slice(0, 50).map((f) => {
      const tr = el('tr');
      tr.append(
        td(time(f.at_ms)), td(f.status === null || f.status === undefined ? '-' : f.status, 'num'),
        td(f.reason), td(f.end_reason.replace(/_/g, ' ')), td(f.calling || ''), td(f.called || ''),
        td(f.inbound_trunk ? trunks(f.inbound_trunk, f.outbound_trunk) : ''), td(f.source || ''),
      );
      return tr;
    }));
    $('failures-empty').hidden = list.length > 0;
  }

  const SVG = 'http://www.w3.org/2000/svg';

  function svgEl(tag, attrs, text) {
    const e = document.createElementNS(SVG, tag);
    Object.entries(attrs).forEach(([k, v]) => e.setAttribute(k, String(v)));
    if (text !== undefined) e.textContent = String(text);
    return e;
  }

  function span(ms) {
    const s = Math.round(ms / 1000);
    return s >= 120 ? `-${Math.round(s / 60)} min` : `-${s} s`;
  }

  // A line chart of `values` (one per point at `times`) over the last hour, or since the
  // first point when the history is shorter.
  function chart(svg, times, values, digits) {
    const W = 600, H = 160, L = 44, R = 8, T = 10, B = 22;
    const now = Date.now();
    const from = Math.max(now - 3600 * 1000, Math.min(now - 60 * 1000, ...times));
    const max = Math.max(1, ...values) * 1.1;
    const x = (t) => L + ((t - from) / (now - from)) * (W - L - R);
    const y = (v) => H - B - (v / max) * (H - T - B);
    const parts = [
      svgEl('line', { class: 'axis', x1: L, y1: H - B, x2: W - R, y2: H - B }),
      svgEl('line', { class: 'axis', x1: L, y1: T, x2: L, y2: H - B }),
      svgEl('text', { x: 4, y: T + 8 }, max.toFixed(digits)),
      svgEl('text', { x: 4, y: H - B }, '0'),
      svgEl('text', { x: L, y: H - 6 }, span(now - from)),
      svgEl('text', { x: (L + W - R) / 2 - 16, y: H - 6 }, span((now - from) / 2)),
      svgEl('text', { x: W - R - 24, y: H - 6 }, 'now'),
    ];
    const pts = times.map((t, i) => [x(Math.max(t, from)), y(values[i])]);
    if (pts.length > 0) {
      const line = pts.map(([a, b]) => `${a.toFixed(1)},${b.toFixed(1)}`).join(' ');
      const first = pts[0], last = pts[pts.length - 1];
      parts.push(svgEl('polygon', { class: 'area', points: `${first[0].toFixed(1)},${H - B} ${line} ${last[0].toFixed(1)},${H - B}` }));
      parts.push(svgEl('polyline', { class: 'series', points: line }));
      if (pts.length <= 60) {
        pts.forEach(([a, b]) => parts.push(svgEl('circle', { class: 'dot', cx: a.toFixed(1), cy: b.toFixed(1), r: 2.5 })));
      }
    } else {
      parts.push(svgEl('text', { x: W / 2 - 60, y: H / 2 }, 'collecting samples\u2026'));
    }
    svg.replaceChildren(...parts);
  }

  function renderHistory(h) {
    const pts = h.points || [];
    const times = pts.map((p) => p.t_ms);
    chart($('chart-rate'), times, pts.map((p) => p.calls_per_second), 1);
    chart($('chart-active'), times, pts.map((p) => p.calls_active), 0);
  }

  function renderOverview(o) {
    setText('node', o.node);
    document.title = `Portcullis ${o.node}`;
    const h = $('health');
    h.textContent = o.ready ? 'ready' : `not ready: ${o.reasons.join(', ')}`;
    h.className = `badge ${o.ready ? 'ok' : 'bad'}`;
    setText('calls-active', o.calls_active);
    setText('calls-rate', num(o.calls_per_second, 1));
    setText('calls-total', o.calls_total);
    setText('generation', o.config_generation);
    setText('backend', o.dataplane_backend || '-');
    setText('version', `portcullis ${o.version}`);
  }

  // ---- polling -----------------------------------------------------------------------

  async function refresh() {
    if (busy) return;
    busy = true;
    const mine = session;
    try {
      const [o, calls, trunkList, teams, workers, failures, history] = await Promise.all([
        get('/api/v1/overview'), get('/api/v1/calls'), get('/api/v1/trunks'),
        get('/api/v1/teams'), get('/api/v1/dataplane'), get('/api/v1/failures'),
        get('/api/v1/history'),
      ]);
      if (mine !== session) return;
      renderOverview(o);
      renderCalls(calls);
      renderTrunks(trunkList);
      renderTeams(teams);
      renderWorkers(workers);
      renderFailures(failures);
      renderHistory(history);
      $('main').hidden = false;
      setText('updated', `updated ${time(Date.now())}`);
      document.body.dataset.updates = String(Number(document.body.dataset.updates || 0) + 1);
      if ($('message').className === 'error' && $('message').dataset.kind === 'poll') message('');
    } catch (e) {
      if (mine !== session) return;
      if (e instanceof AuthError) {
        signOut(token ? 'The token was refused.' : 'Sign in with the admin token.');
      } else {
        message(`Update failed: ${e.message}`, true);
        $('message').dataset.kind = 'poll';
      }
    } finally {
      busy = false;
    }
  }

  function start() {
    stop();
    refresh();
    timer = setInterval(refresh, POLL_MS);
  }

  function stop() {
    if (timer) clearInterval(timer);
    timer = null;
  }

  // ---- CDR search --------------------------------------------------------------------

  async function searchCdrs() {
    const params = new URLSearchParams();
    const number = $('cdr-number').value.trim();
    const trunk = $('cdr-trunk').value.trim();
    if (number) params.set('number', number);
    if (trunk) params.set('trunk', trunk);
    params.set('since_ms', String(Date.now() - Number($('cdr-window').value) * 1000));
    if ($('cdr-failed').checked) params.set('failed', 'true');
    params.set('limit', '200');
    setText('cdr-summary', 'searching\u2026');
    try {
      const r = await get(`/api/v1/cdrs?${params.toString()}`);
      fill($('cdrs').tBodies[0], r.records.map((h) => {
        const tr = el('tr');
        tr.append(
          td(dateTime(h.end_at_ms)), td(h.call_id, 'num'), td(h.calling), td(h.called),
          td(trunks(h.inbound_trunk, h.outbound_trunk)),
          td(h.duration_ms === null || h.duration_ms === undefined ? '-' : duration(h.duration_ms / 1000), 'num'),
          td(h.final_status === null || h.final_status === undefined ? '-' : h.final_status, 'num'),
          td((h.end_reason || '').replace(/_/g, ' ')),
        );
        return tr;
      }));
      setText('cdr-summary', `${r.records.length} record(s)${r.truncated ? ' (newest shown; narrow the search for more)' : ''}`);
    } catch (e) {
      if (e instanceof AuthError) signOut('The token was refused.');
      else setText('cdr-summary', `search failed: ${e.message}`);
    }
  }

  // ---- wiring ------------------------------------------------------------------------

  async function init() {
    $('signin').addEventListener('submit', (ev) => {
      ev.preventDefault();
      token = $('token').value.trim();
      $('token').value = '';
      if (!token) return;
      sessionStorage.setItem(KEY, token);
      session += 1;
      message('');
      showAuth();
      start();
    });
    $('signout').addEventListener('click', () => signOut('Signed out.'));
    $('reload').addEventListener('click', async () => {
      $('reload').disabled = true;
      try {
        const r = await api('POST', '/api/v1/reload');
        if (r.status === 200) message(`Configuration reloaded: generation ${r.body.generation}.`);
        else if (r.status === 401) signOut('The token was refused.');
        else if (r.body && r.body.errors) message(`Reload refused, the running configuration stays: ${r.body.errors.join('; ')}`, true);
        else message(`Reload failed: HTTP ${r.status}`, true);
      } catch (e) {
        message(`Reload failed: ${e.message}`, true);
      } finally {
        $('reload').disabled = false;
      }
      refresh();
    });
    $('cdr-form').addEventListener('submit', (ev) => {
      ev.preventDefault();
      searchCdrs();
    });
    try {
      const r = await fetch('/dashboard/auth', { cache: 'no-store', credentials: 'omit' });
      tokenRequired = (await r.json()).token_required !== false;
    } catch (_) {
      tokenRequired = true;
    }
    showAuth();
    if (token || !tokenRequired) start();
    else message('Sign in with the admin token.');
  }

  document.addEventListener('DOMContentLoaded', init);
})();
