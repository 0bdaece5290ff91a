// edgecap dashboard: fills the server-rendered frames from the JSON API
// (/client/v4/accounts/<account>/...) with the session cookie. Hand-written, no dependencies,
// no build step; served as /assets/app.js under a CSP that allows no inline script.
'use strict';

(function () {
  const main = document.getElementById('view');
  if (!main) return; // the login page needs no script
  const account = main.dataset.account;
  const base = '/client/v4/accounts/' + encodeURIComponent(account) + '/';

  // --- helpers -----------------------------------------------------------------------------

  function el(tag, attrs, ...kids) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k === 'text') e.textContent = v;
      else if (k === 'on') for (const [ev, f] of Object.entries(v)) e.addEventListener(ev, f);
      else e.setAttribute(k, v === true ? '' : v);
    }
    for (const kid of kids.flat(Infinity)) {
      if (kid === null || kid === undefined) continue;
      e.append(kid instanceof Node ? kid : document.createTextNode(String(kid)));
    }
    return e;
  }

  const SVG = 'http://www.w3.org/2000/svg';
  function svg(tag, attrs) {
    const e = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
    return e;
  }

  // One call to the JSON API. 401 (no session, expired, logged out) goes to the login page.
  async function api(method, path, body) {
    const init = { method, credentials: 'same-origin', headers: {} };
    if (body !== undefined) {
      init.headers['content-type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    const r = await fetch(base + path, init);
    if (r.status === 401) {
      location.assign('/login');
      throw new Error('the session ended');
    }
    let json = null;
    try { json = await r.json(); } catch (e) { json = null; }
    return { status: r.status, ok: r.ok && !!json && json.success, json };
  }

  function rate(pps) {
    if (pps === undefined || pps === null) return '–';
    if (pps >= 1e6) return (pps / 1e6).toFixed(2) + ' Mpps';
    if (pps >= 1e3) return (pps / 1e3).toFixed(1) + ' kpps';
    return pps.toFixed(pps < 10 ? 1 : 0) + ' pps';
  }
  function bits(bps) {
    if (!bps) return '0 bit/s';
    const u = ['bit/s', 'kbit/s', 'Mbit/s', 'Gbit/s'];
    let i = 0;
    while (bps >= 1000 && i < u.length - 1) { bps /= 1000; i++; }
    return bps.toFixed(1) + ' ' + u[i];
  }
  function size(n) {
    const u = ['B', 'KiB', 'MiB', 'GiB'];
    let i = 0;
    while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
    return (i ? n.toFixed(1) : n) + ' ' + u[i];
  }

  function setContent(...kids) {
    const h1 = main.querySelector('h1');
    main.replaceChildren(h1, ...kids);
  }

  function problem(r) {
    const errs = (r.json && r.json.errors) || [];
    return errs.map((e) => e.message).join('; ') || 'request failed (HTTP ' + r.status + ')';
  }

  // Errors of a 400 shown next to their fields: each error's source.pointer (/colo_name,
  // /filter_v1/destination_port) names the field; the rest go to the form's own line.
  function showErrors(form, r) {
    for (const e of form.querySelectorAll('.field-error')) e.textContent = '';
    const general = form.querySelector('.form-error');
    general.textContent = '';
    for (const e of (r.json && r.json.errors) || [{ message: problem(r) }]) {
      const pointer = (e.source && e.source.pointer) || '';
      const name = pointer.split('/')[1] || '';
      const slot = name && form.querySelector('.field-error[data-for="' + CSS.escape(name) + '"]');
      if (slot) slot.textContent = e.message;
      else general.textContent += (general.textContent ? '; ' : '') + e.message;
    }
  }

  // A small line of values (sparkline).
  function sparkline(values) {
    const w = 120, h = 24;
    const s = svg('svg', { width: w, height: h, viewBox: '0 0 ' + w + ' ' + h, class: 'spark' });
    if (values.length < 2) return s;
    const max = Math.max(...values, 1e-9);
    const pts = values.map((v, i) =>
      (i * w / (values.length - 1)).toFixed(1) + ',' + (h - 1 - v / max * (h - 2)).toFixed(1));
    s.append(svg('polyline', { points: pts.join(' '), fill: 'none', class: 'line' }));
    return s;
  }

  // --- fleet -------------------------------------------------------------------------------

  async function fleet() {
    const [nodes, traffic] = await Promise.all([
      api('GET', 'nodes'),
      api('GET', 'traffic?since=-15m&group_by=node'),
    ]);
    if (!nodes.ok) { setContent(el('p', { class: 'error', text: problem(nodes) })); return; }
    const series = {};
    if (traffic.ok) for (const s of traffic.json.result.series) series[s.key] = s.points;
    const rows = nodes.json.result.map((n) => {
      const pts = series[n.name] || [];
      // The current rate: the newest point with traffic, with its age (agents report their
      // seconds at each heartbeat, so the last few seconds are not in yet).
      let last = null;
      for (let i = pts.length - 1; i >= 0 && !last; i--) if (pts[i].packets > 0) last = pts[i];
      const age = last ? Math.max(0, Math.round((Date.now() - Date.parse(last.t)) / 1000)) : 0;
      const health = n.health
        ? (n.health.ready ? 'ready' : 'not ready') +
          (n.health.problems && n.health.problems.length ? ': ' + n.health.problems.join('; ') : '')
        : '–';
      return el('tr', { 'data-node': n.name },
        el('td', { class: 'name', text: n.name }),
        el('td', {}, el('span', { class: n.connected ? 'ok' : 'bad', text: n.connected ? 'connected' : 'disconnected' })),
        el('td', { text: Object.entries(n.labels || {}).map(([k, v]) => k + '=' + v).join(', ') }),
        el('td', { text: (n.points || []).join(', ') }),
        el('td', { class: 'health', text: health }),
        el('td', { class: 'num', text: last ? rate(last.packets_per_second) + ' · ' + bits(last.bits_per_second) + ' (' + age + ' s ago)' : (pts.length ? 'idle' : '–') }),
        el('td', {}, sparkline(pts.map((p) => p.packets_per_second))),
        el('td', { class: 'muted', text: n.last_seen || '' }));
    });
    setContent(
      el('p', { class: 'muted', text: nodes.json.result.length + ' nodes; current rate: the newest second with traffic in the last 15 minutes' + (traffic.ok ? '' : ' (traffic: ' + problem(traffic) + ')') }),
      el('table', { id: 'nodes' },
        el('thead', {}, el('tr', {}, ['Node', 'State', 'Labels', 'Points', 'Observer', 'Current rate', 'Last 15 min', 'Last seen'].map((t) => el('th', { text: t })))),
        el('tbody', {}, rows)));
  }

  // --- captures ----------------------------------------------------------------------------

  function field(name, label, attrs) {
    return el('div', { class: 'field' },
      el('label', { for: 'f-' + name, text: label }),
      attrs && attrs.type === 'checkbox'
        ? el('input', Object.assign({ id: 'f-' + name, name }, attrs))
        : el('input', Object.assign({ id: 'f-' + name, name, type: 'text' }, attrs || {})),
      el('span', { class: 'field-error', 'data-for': name, role: 'alert' }));
  }

  // The create body from the form: only the fields given.
  function body(form) {
    const v = (n) => form.elements[n].value.trim();
    const b = { type: 'full', system: 'magic-transit' };
    if (v('colo_name')) b.colo_name = v('colo_name');
    if (v('nodes')) b.nodes = v('nodes').split(',').map((s) => s.trim()).filter(Boolean);
    if (v('filter')) b.filter = v('filter');
    for (const n of ['time_limit', 'packet_limit']) {
      if (v(n)) b[n] = /^-?[0-9.]+$/.test(v(n)) ? Number(v(n)) : v(n);
    }
    if (v('destination_conf')) b.destination_conf = v('destination_conf');
    if (form.elements.merge.checked) b.merge = true;
    return b;
  }

  function captureForm() {
    const q = new URLSearchParams(location.search);
    const estimate = el('div', { id: 'estimate', class: 'estimate' });
    const form = el('form', { id: 'new-capture', class: 'card', novalidate: true },
      el('h2', { text: 'New live capture' }),
      field('colo_name', 'Site (colo_name)', { value: q.get('colo_name') || '' }),
      field('nodes', 'Nodes (comma-separated)', { value: q.get('nodes') || '' }),
      field('filter', 'Filter (tcpdump syntax)', { value: q.get('filter') || '', size: 40 }),
      field('time_limit', 'Time limit (s)', { value: q.get('time_limit') || '60' }),
      field('packet_limit', 'Packet limit', { value: q.get('packet_limit') || '10000' }),
      field('destination_conf', 'Destination', { value: q.get('destination_conf') || localStorage.getItem('edgecap.destination') || '', size: 40, placeholder: 's3://bucket/dir or file:///path' }),
      field('merge', 'Merge the nodes\u2019 files', { type: 'checkbox' }),
      el('p', { class: 'form-error error', role: 'alert' }),
      estimate,
      el('div', { class: 'buttons' },
        el('button', { type: 'button', id: 'estimate-button', text: 'Estimate size', on: { click: () => runEstimate(form, estimate) } }),
        el('button', { type: 'submit', id: 'start', text: 'Start capture' })));
    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      const r = await api('POST', 'pcaps', body(form));
      if (!r.ok) { showErrors(form, r); return; }
      localStorage.setItem('edgecap.destination', form.elements.destination_conf.value.trim());
      location.assign('/captures/' + encodeURIComponent(r.json.result.id));
    });
    if (q.get('filter')) setTimeout(() => runEstimate(form, estimate), 0);
    return form;
  }

  function range(x, fmt) {
    return fmt(x.expected) + ' (' + fmt(x.low) + ' – ' + fmt(x.high) + ')';
  }

  async function runEstimate(form, out) {
    out.replaceChildren(el('p', { class: 'muted', text: 'Estimating from the nodes\u2019 look-back rings…' }));
    const r = await api('POST', 'pcaps/estimate', body(form));
    if (!r.ok) { out.replaceChildren(); showErrors(form, r); return; }
    showErrors(form, { json: { errors: [] } });
    const t = r.json.result.total || r.json.result;
    const parts = [];
    if (t.packets_per_second) parts.push('rate ' + range(t.packets_per_second, (v) => rate(v)));
    if (t.packets) parts.push('packets ' + range(t.packets, (v) => Math.round(v).toLocaleString()));
    if (t.file_bytes) parts.push('file ' + range(t.file_bytes, (v) => size(Math.round(v))));
    if (t.ends_by) parts.push('ends by ' + t.ends_by + (t.ends_after_seconds !== undefined ? ' after ' + Math.round(t.ends_after_seconds) + ' s' : ''));
    out.replaceChildren(el('p', { class: 'estimate-result', text: 'Estimate: ' + (parts.join(' · ') || JSON.stringify(t)) }));
  }

  async function captures() {
    const r = await api('GET', 'pcaps?per_page=100');
    const form = captureForm();
    if (!r.ok) { setContent(form, el('p', { class: 'error', text: problem(r) })); return; }
    const rows = r.json.result.map((c) => el('tr', { 'data-capture': c.id },
      el('td', {}, el('a', { href: '/captures/' + encodeURIComponent(c.id), text: c.id.slice(0, 12) })),
      el('td', { text: c.type }),
      el('td', {}, el('span', { class: 'status ' + c.status, text: c.status })),
      el('td', { text: c.submitted }),
      el('td', { text: c.filter || JSON.stringify(c.filter_v1 || {}) }),
      el('td', { class: 'num', text: c.packets_captured }),
      el('td', { class: 'num', text: (c.node_results || []).length })));
    setContent(form,
      el('h2', { text: 'Captures' }),
      el('table', { id: 'captures' },
        el('thead', {}, el('tr', {}, ['Id', 'Type', 'Status', 'Submitted', 'Filter', 'Packets', 'Nodes'].map((t) => el('th', { text: t })))),
        el('tbody', {}, rows.length ? rows : [el('tr', {}, el('td', { colspan: 7, class: 'muted', text: 'No captures yet.' }))])));
  }

  function renderCapture(c) {
    const done = ['success', 'complete', 'failed'].includes(c.status);
    const nodes = (c.node_results || []).map((n) => el('tr', { 'data-node': n.node },
      el('td', { text: n.node }),
      el('td', {}, el('span', { class: 'status ' + n.status, text: n.status })),
      el('td', { class: 'num', text: n.packets }),
      el('td', { class: 'num', text: size(n.bytes) }),
      el('td', { class: 'num', text: n.lost }),
      el('td', { text: n.file || '' }),
      el('td', { text: n.error_message || n.stop_reason || '' })));
    const info = [
      ['Status', el('span', { id: 'capture-status', class: 'status ' + c.status, text: c.status })],
      ['Type', c.type], ['Submitted', c.submitted], ['Time limit', c.time_limit + ' s'],
      ['Packet limit', c.packet_limit], ['Filter', c.filter || JSON.stringify(c.filter_v1 || {})],
      ['Destination', c.destination_conf], ['Packets', c.packets_captured],
      ['Bytes', size(c.bytes_captured || 0)], ['Lost', c.packets_lost],
      ['Merge', c.merge ? (c.merged_file || 'when every node is done') : 'no'],
      ['Error', c.error_message],
    ].filter(([, v]) => v !== undefined && v !== null && v !== '');
    const actions = el('div', { class: 'buttons' });
    if (!done) {
      actions.append(el('button', { id: 'stop', text: 'Stop', on: { click: async () => {
        const r = await api('PUT', 'pcaps/' + encodeURIComponent(c.id) + '/stop');
        actions.append(el('span', { class: r.ok ? 'muted' : 'error', text: r.ok ? ' stop requested' : ' ' + problem(r) }));
      } } }));
    }
    if (c.type === 'simple' && c.status === 'success') {
      actions.append(el('a', { href: base + 'pcaps/' + encodeURIComponent(c.id) + '/download', text: 'Download file' }));
    }
    setContent(
      el('dl', { class: 'facts' }, info.map(([k, v]) => [el('dt', { text: k }), el('dd', {}, v)])),
      actions,
      el('h2', { text: 'Nodes' }),
      el('table', { id: 'node-results' },
        el('thead', {}, el('tr', {}, ['Node', 'Status', 'Packets', 'Bytes', 'Lost', 'File', 'Note'].map((t) => el('th', { text: t })))),
        el('tbody', {}, nodes)),
      el('p', { class: 'muted', id: 'live', text: done ? 'finished' : 'live: updates are pushed by the server' }));
  }

  async function capture() {
    const id = main.dataset.capture;
    main.querySelector('h1').textContent = 'Capture ' + id;
    const r = await api('GET', 'pcaps/' + encodeURIComponent(id));
    if (!r.ok) { setContent(el('p', { class: 'error', text: problem(r) })); return; }
    renderCapture(r.json.result);
    const events = new EventSource('/ui/accounts/' + encodeURIComponent(account) + '/pcaps/' + encodeURIComponent(id) + '/events');
    events.addEventListener('capture', (ev) => {
      const c = JSON.parse(ev.data);
      renderCapture(c);
      if (['success', 'complete', 'failed'].includes(c.status)) events.close();
    });
    window.addEventListener('pagehide', () => events.close());
  }

  // --- traffic -----------------------------------------------------------------------------

  const RANGES = [['15m', 900], ['1h', 3600], ['6h', 21600], ['24h', 86400]];

  async function traffic() {
    const q = new URLSearchParams(location.search);
    const now = Math.floor(Date.now() / 1000);
    const span = Number(q.get('span')) || 3600;
    const since = Number(q.get('since')) || now - span;
    const until = Number(q.get('until')) || now;
    const group = q.get('group_by') || 'node';
    const by = q.get('by') || 'dst';
    const go = (p) => {
      const n = new URLSearchParams(Object.assign({ group_by: group, by }, p));
      location.assign('/traffic?' + n.toString());
    };
    const controls = el('div', { class: 'controls' },
      RANGES.map(([label, secs]) => el('button', { type: 'button', text: 'last ' + label, on: { click: () => go({ span: secs }) } })),
      el('label', { text: ' group by ' }),
      el('select', { id: 'group', on: { change: (e) => go({ since, until, group_by: e.target.value }) } },
        ['node', 'point', 'proto'].map((g) => el('option', { value: g, selected: g === group, text: g }))),
      el('label', { text: ' heavy hitters by ' }),
      el('select', { id: 'by', on: { change: (e) => go({ since, until, by: e.target.value }) } },
        ['dst', 'src', 'dport'].map((g) => el('option', { value: g, selected: g === by, text: g }))));
    const range = 'since=' + since + '&until=' + until;
    const [t, top] = await Promise.all([
      api('GET', 'traffic?' + range + '&group_by=' + group),
      api('GET', 'traffic/top?' + range + '&by=' + by + '&limit=10'),
    ]);
    const label = new Date(since * 1000).toISOString() + ' – ' + new Date(until * 1000).toISOString();
    const chartBox = el('div', { id: 'chart' });
    if (t.ok) chartBox.append(chart(t.json.result, since, until, (a, b) => go({ since: a, until: b })));
    else chartBox.append(el('p', { class: 'error', text: problem(t) }));
    const hitters = el('div', { id: 'hitters' });
    // A live capture of a hitter is on the nodes in the chart (grouped by node).
    const nodes = t.ok && group === 'node' ? t.json.result.series.map((x) => x.key).filter(Boolean) : [];
    if (top.ok) hitters.append(hitterTable(top.json.result, by, since, until, nodes));
    else hitters.append(el('p', { class: 'error', text: problem(top) }));
    setContent(controls, el('p', { class: 'muted', text: label + ' · drag across the chart to zoom' }), chartBox,
      el('h2', { text: 'Heavy hitters in this range' }), hitters,
      el('p', { class: 'error', id: 'action-error', role: 'alert' }));
  }

  const COLORS = ['#2563eb', '#dc2626', '#16a34a', '#d97706', '#7c3aed', '#0891b2', '#be185d', '#4b5563'];

  function chart(t, since, until, zoom) {
    const W = 900, H = 260, L = 60, B = 24;
    const s = svg('svg', { viewBox: '0 0 ' + W + ' ' + H, class: 'chart', role: 'img' });
    const ts = (p) => Date.parse(p.t) / 1000;
    let max = 0;
    for (const se of t.series) for (const p of se.points) max = Math.max(max, p.packets_per_second);
    max = max || 1;
    const x = (sec) => L + (sec - since) / Math.max(until - since, 1) * (W - L - 4);
    const y = (v) => H - B - v / max * (H - B - 8);
    s.append(svg('line', { x1: L, y1: H - B, x2: W - 4, y2: H - B, class: 'axis' }));
    s.append(svg('line', { x1: L, y1: 4, x2: L, y2: H - B, class: 'axis' }));
    const top = svg('text', { x: 4, y: 14, class: 'tick' }); top.textContent = rate(max); s.append(top);
    const zero = svg('text', { x: 4, y: H - B, class: 'tick' }); zero.textContent = '0'; s.append(zero);
    for (const [i, frac] of [0, 0.5, 1].entries()) {
      const sec = since + frac * (until - since);
      const tx = svg('text', { x: x(sec) - (i === 2 ? 60 : i === 1 ? 30 : 0), y: H - 6, class: 'tick' });
      tx.textContent = new Date(sec * 1000).toISOString().slice(11, 19);
      s.append(tx);
    }
    const legend = el('ul', { class: 'legend' });
    t.series.forEach((se, i) => {
      const c = COLORS[i % COLORS.length];
      const pts = se.points.map((p) => x(ts(p)).toFixed(1) + ',' + y(p.packets_per_second).toFixed(1));
      s.append(svg('polyline', { points: pts.join(' '), fill: 'none', stroke: c, 'stroke-width': 1.5, 'data-series': se.key || 'all' }));
      legend.append(el('li', { 'data-color': String(i % COLORS.length) }, el('span', { class: 'swatch c' + (i % COLORS.length) }), (se.key || 'all') + ': ' + se.packets.toLocaleString() + ' packets'));
    });
    // Brush: drag across the chart to choose a range, then zoom into it.
    const brush = svg('rect', { y: 4, height: H - B - 4, width: 0, class: 'brush' });
    s.append(brush);
    let from = null;
    const at = (ev) => {
      const r = s.getBoundingClientRect();
      return (ev.clientX - r.left) / r.width * W;
    };
    s.addEventListener('pointerdown', (ev) => { from = at(ev); brush.setAttribute('x', from); brush.setAttribute('width', 0); s.setPointerCapture(ev.pointerId); });
    s.addEventListener('pointermove', (ev) => {
      if (from === null) return;
      const to = at(ev);
      brush.setAttribute('x', Math.min(from, to));
      brush.setAttribute('width', Math.abs(to - from));
    });
    s.addEventListener('pointerup', (ev) => {
      if (from === null) return;
      const to = at(ev);
      const sec = (px) => Math.round(since + (px - L) / (W - L - 4) * (until - since));
      const a = Math.max(since, sec(Math.min(from, to)));
      const b = Math.min(until, sec(Math.max(from, to)));
      from = null;
      if (b - a >= 10) zoom(a, b);
    });
    return el('div', {}, s, legend, t.series.length ? null : el('p', { class: 'muted', text: 'No traffic in this range.' }));
  }

  function hitterFilter(by, key) {
    const k = typeof key === 'object' ? JSON.stringify(key) : String(key);
    if (by === 'dport') return 'dst port ' + k;
    return (by === 'src' ? 'src' : 'dst') + ' host ' + k;
  }

  function hitterTable(top, by, since, until, nodes) {
    const rows = top.hitters.map((h) => {
      const filter = hitterFilter(by, h.key);
      return el('tr', { 'data-key': String(h.key) },
        el('td', { text: String(h.key) }),
        el('td', { class: 'num', text: h.packets.toLocaleString() + ' ± ' + (h.error + (h.sampling_error || 0)).toLocaleString() }),
        el('td', { class: 'num', text: rate(h.packets_per_second) }),
        el('td', {},
          el('button', { type: 'button', class: 'lookback', text: 'Look-back capture', on: { click: () => lookback(filter, since, until) } }),
          el('a', { class: 'button live', href: '/captures?' + new URLSearchParams(nodes.length ? { filter, nodes: nodes.join(',') } : { filter }).toString(), text: 'Live capture…' })));
    });
    return el('table', { id: 'top' },
      el('thead', {}, el('tr', {}, [by, 'Packets', 'Rate', ''].map((t) => el('th', { text: t })))),
      el('tbody', {}, rows.length ? rows : [el('tr', {}, el('td', { colspan: 4, class: 'muted', text: 'No heavy hitters in this range.' }))]));
  }

  // A look-back (type: simple) capture of the chosen range from the nodes' rings.
  async function lookback(filter, since, until) {
    const end = Math.min(until, Math.floor(Date.now() / 1000));
    const r = await api('POST', 'pcaps', {
      type: 'simple', system: 'magic-transit', filter, packet_limit: 10000,
      time_limit: Math.max(1, end - since), offset_time: new Date(end * 1000).toISOString().replace(/\.\d+Z$/, 'Z'),
    });
    if (!r.ok) { document.getElementById('action-error').textContent = problem(r); return; }
    location.assign('/captures/' + encodeURIComponent(r.json.result.id));
  }

  // --- start -------------------------------------------------------------------------------

  const views = { fleet, captures, capture, traffic };
  (views[main.dataset.view] || fleet)().catch((e) => {
    setContent(el('p', { class: 'error', text: 'The dashboard could not load this view: ' + e.message }));
  });
})();
