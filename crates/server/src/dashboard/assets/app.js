// edgecap dashboard: fills the server-rendered frames from the JSON API
// (/client/v4/accounts/<account>/...) with the session cookie. Hand-written, no dependencies,
// no build step; served as /assets/app.js under a CSP that allows no inline script.
'use strict';

(function () {
  const main = document.getElementById('view');
  if (!main) return; // the login page needs no script
  const account = main.dataset.account;
  const base = '/client/v4/accounts/' + encodeURIComponent(account) + '/';
  // The dashboard's own data (capture events, the packet view).
  const ui = '/ui/accounts/' + encodeURIComponent(account) + '/';

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
  async function api(method, path, body, root) {
    const init = { method, credentials: 'same-origin', headers: {} };
    if (body !== undefined) {
      init.headers['content-type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    const r = await fetch((root || base) + path, init);
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
  // /condition/above, /filter_v1/destination_port) names the field: the slot of the longest
  // dotted prefix that has one (condition.above, else condition); the rest go to the form's
  // own line.
  function showErrors(form, r) {
    for (const e of form.querySelectorAll('.field-error')) e.textContent = '';
    const general = form.querySelector('.form-error');
    general.textContent = '';
    for (const e of (r.json && r.json.errors) || [{ message: problem(r) }]) {
      const segs = ((e.source && e.source.pointer) || '').split('/').slice(1).filter(Boolean);
      let slot = null;
      for (let i = segs.length; i > 0 && !slot; i--) {
        slot = form.querySelector('.field-error[data-for="' + CSS.escape(segs.slice(0, i).join('.')) + '"]');
      }
      if (slot) slot.textContent = (slot.textContent ? slot.textContent + '; ' : '') + e.message;
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

  // The steps the traffic API takes (crates/server/src/rollups/query.rs, STEPS).
  const STEPS = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400];
  // The smallest step that keeps `series` series over `span` seconds within `points` points
  // in all: the server downsamples to it, so a big fleet's answer stays small (and within
  // the API's bound on an answer's points).
  function stepFor(span, series, points) {
    for (const s of STEPS) if (series * (Math.ceil(span / s) + 1) <= points) return s;
    return STEPS[STEPS.length - 1];
  }
  // Points of an answer: at most `each` a series and TOTAL_POINTS all series together, so a
  // thousand nodes' answer stays small (a sparkline is 120 px wide: 60 points; the traffic
  // chart 900 px: 150).
  const TOTAL_POINTS = 10000;
  const SPARK_POINTS = 60;
  const CHART_POINTS = 150;
  function boundedStep(span, series, each) {
    return Math.max(stepFor(span, series, TOTAL_POINTS), stepFor(span, 1, each));
  }
  function fleetStep(nodes) {
    return boundedStep(900, nodes, SPARK_POINTS);
  }

  // --- fleet -------------------------------------------------------------------------------

  async function fleet() {
    const nodes = await api('GET', 'nodes');
    const n = nodes.ok ? nodes.json.result.length : 1;
    const step = fleetStep(Math.max(n, 1));
    const traffic = await api('GET', 'traffic?since=-15m&group_by=node&step=' + step);
    if (!nodes.ok) { setContent(el('p', { class: 'error', text: problem(nodes) })); return; }
    const series = {};
    if (traffic.ok) for (const s of traffic.json.result.series) series[s.key] = s.points;
    const rows = nodes.json.result.map((n) => {
      const pts = series[n.name] || [];
      // The current rate: the newest whole step with traffic, with its age. A step that ended
      // less than 5 s ago is still filling (agents report their seconds at each heartbeat).
      const whole = (p) => Date.parse(p.t) + step * 1000 <= Date.now() - 5000;
      let last = null;
      for (let i = pts.length - 1; i >= 0 && !last; i--) if (pts[i].packets > 0 && whole(pts[i])) last = pts[i];
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
      el('p', { class: 'muted', text: nodes.json.result.length + ' nodes; current rate: the newest whole ' + step + ' s with traffic in the last 15 minutes' + (traffic.ok ? '' : ' (traffic: ' + problem(traffic) + ')') }),
      el('table', { id: 'nodes' },
        el('thead', {}, el('tr', {}, ['Node', 'State', 'Labels', 'Points', 'Observer', 'Current rate', 'Last 15 min', 'Last seen'].map((t) => el('th', { text: t })))),
        el('tbody', {}, rows)));
  }

  // --- captures ----------------------------------------------------------------------------

  // A labelled input (or select, with attrs.options) and the slot for its server error. The
  // id is f-<name> with dots as dashes (f-condition-above).
  function field(name, label, attrs) {
    const id = 'f-' + name.replace(/\./g, '-');
    const a = Object.assign({}, attrs || {});
    let input;
    if (a.options) {
      const opts = a.options;
      delete a.options;
      input = el('select', Object.assign({ id, name }, a),
        opts.map((o) => el('option', { value: o, selected: o === a.value, text: o })));
    } else if (a.type === 'checkbox') {
      input = el('input', Object.assign({ id, name }, a));
    } else {
      input = el('input', Object.assign({ id, name, type: 'text' }, a));
    }
    return el('div', { class: 'field' },
      el('label', { for: id, text: label }),
      input,
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
    // The packet view: a look-back capture's file, or files in a file:// directory (read
    // where the server runs).
    const viewable = (c.type === 'simple' && !c.destination_conf && c.status === 'success') ||
      ((c.destination_conf || '').startsWith('file://') && (c.merged_file || (c.node_results || []).some((n) => n.file)));
    if (viewable) {
      actions.append(el('a', { class: 'button', id: 'packets-link', href: '/captures/' + encodeURIComponent(c.id) + '/packets', text: 'Packets' }));
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
    // The step bounds the answer (boundedStep): by node, there are as many series as nodes;
    // by point or protocol, a handful. Seconds older than the server's fine retention are
    // kept only as minutes, so a step it refuses there is retried in whole minutes.
    const series = (step) => api('GET', 'traffic?' + range + '&group_by=' + group + '&step=' + step);
    const topAnswer = api('GET', 'traffic/top?' + range + '&by=' + by + '&limit=10');
    const fleetNodes = group === 'node' ? await api('GET', 'nodes') : null;
    const count = fleetNodes && fleetNodes.ok ? fleetNodes.json.result.length : 8;
    const step = boundedStep(until - since, Math.max(count, 1), CHART_POINTS);
    const first = await series(step);
    const top = await topAnswer;
    const refusedStep = first.status === 400 && ((first.json && first.json.errors) || []).some((e) => e.source && e.source.pointer === '/step');
    const t = refusedStep && step % 60 ? await series(Math.ceil(step / 60) * 60) : first;
    const label = new Date(since * 1000).toISOString() + ' – ' + new Date(until * 1000).toISOString();
    const chartBox = el('div', { id: 'chart' });
    if (t.ok) chartBox.append(chart(t.json.result, since, until, (a, b) => go({ since: a, until: b })));
    else chartBox.append(el('p', { class: 'error', text: problem(t) }));
    if (t.ok) markEvents(chartBox, await timelineEvents(since, until), since, until);
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
    const s = svg('svg', { viewBox: '0 0 ' + W + ' ' + H, class: 'chart', role: 'img', 'aria-label': 'Packet rates over time; the chart\u2019s numbers are in the table below it' });
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
    return el('div', {}, s, legend, t.series.length ? null : el('p', { class: 'muted', text: 'No traffic in this range.' }),
      t.series.length ? chartTable(t) : null);
  }

  // The chart's numbers as a table (for screen readers, copying, and exact values): one row
  // per series and step, built when first opened (an answer holds at most TOTAL_POINTS).
  function chartTable(t) {
    const body = el('tbody', {});
    const box = el('details', { id: 'chart-data' },
      el('summary', { text: 'The chart\u2019s numbers (' + t.step + ' s a step)' }),
      el('table', {},
        el('thead', {}, el('tr', {}, ['Series', 'Step from (UTC)', 'Packets', 'Rate', 'Bit rate'].map((h) => el('th', { text: h })))),
        body));
    box.addEventListener('toggle', () => {
      if (!box.open || body.childElementCount) return;
      body.append(...t.series.flatMap((se) => se.points.map((p) => el('tr', { 'data-series': se.key || 'all', 'data-t': Date.parse(p.t) / 1000 },
        el('td', { text: se.key || 'all' }),
        el('td', { text: p.t.replace('T', ' ').replace('Z', '') }),
        el('td', { class: 'num packets', text: p.packets.toLocaleString() }),
        el('td', { class: 'num pps', text: rate(p.packets_per_second) }),
        el('td', { class: 'num bps', text: bits(p.bits_per_second) })))));
    });
    return box;
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

  // --- packets -----------------------------------------------------------------------------

  // An address and port as tcpdump's peers write them: 198.18.0.1:53, [2001:db8::1]:53.
  function endpoint(addr, port) {
    if (!addr) return '–';
    if (port === null || port === undefined) return addr;
    return (addr.includes(':') ? '[' + addr + ']' : addr) + ':' + port;
  }

  // A capture's packets (the server reads the file, filters with its own matcher and decodes
  // the headers): a page at a time, a display filter, a row's header tree and hex.
  async function packets() {
    const id = main.dataset.capture;
    main.querySelector('h1').textContent = 'Packets of capture ' + id;
    const q = new URLSearchParams(location.search);
    const st = { filter: q.get('filter') || '', file: q.get('file') || '', offset: Number(q.get('offset')) || 0 };
    const form = el('form', { id: 'display-filter', class: 'card', novalidate: true },
      field('filter', 'Display filter (tcpdump syntax, applied by the server)', { value: st.filter, size: 60, placeholder: 'udp and dst port 53' }),
      el('span', { class: 'field', id: 'file-choice' }),
      el('p', { class: 'form-error error', role: 'alert' }),
      el('div', { class: 'buttons' },
        el('button', { type: 'submit', id: 'apply-filter', text: 'Apply' }),
        el('a', { class: 'button', href: '/captures/' + encodeURIComponent(id), text: 'Back to the capture' })));
    const list = el('div', { id: 'packet-list' });
    const detail = el('div', { id: 'packet-detail' });
    setContent(form, list, detail);
    const path = (extra) => {
      const p = new URLSearchParams();
      if (st.filter) p.set('filter', st.filter);
      if (st.file) p.set('file', st.file);
      for (const [k, v] of Object.entries(extra || {})) p.set(k, v);
      return 'pcaps/' + encodeURIComponent(id) + '/packets?' + p.toString();
    };
    async function showPacket(index, tr) {
      for (const x of list.querySelectorAll('tr.selected')) x.classList.remove('selected');
      if (tr) tr.classList.add('selected');
      detail.replaceChildren(el('p', { class: 'muted', text: 'Decoding packet ' + index + '…' }));
      const r = await api('GET', path({ packet: index }), undefined, ui);
      if (!r.ok) { detail.replaceChildren(el('p', { class: 'error', text: problem(r) })); return; }
      const d = r.json.result;
      detail.replaceChildren(
        el('h2', { text: 'Packet ' + index + ': ' + d.packet.info }),
        el('div', { class: 'tree', id: 'packet-tree' }, d.layers.map((l) => el('details', { open: true, 'data-layer': l.name },
          el('summary', { text: l.name + ' (bytes ' + l.offset + '–' + (l.offset + l.length) + ')' }),
          el('dl', { class: 'facts' }, l.fields.map(([k, v]) => [el('dt', { text: k }), el('dd', { text: v })]))))),
        el('h2', { text: 'Bytes' + (d.hex_cut ? ' (the first ' + d.hex_bytes + ' of ' + d.packet.captured + ')' : '') }),
        el('pre', { class: 'hex', id: 'hex', text: d.hex.join('\n') }));
    }
    async function load() {
      list.replaceChildren(el('p', { class: 'muted', text: 'Reading the capture…' }));
      const r = await api('GET', path({ offset: st.offset }), undefined, ui);
      if (!r.ok) { list.replaceChildren(); showErrors(form, r); return; }
      showErrors(form, { json: { errors: [] } });
      const res = r.json.result;
      const choice = form.querySelector('#file-choice');
      choice.replaceChildren();
      if (res.files.length > 1) {
        choice.append(el('label', { for: 'f-file', text: 'File' }),
          el('select', { id: 'f-file', on: { change: (e) => { st.file = e.target.value; st.offset = 0; sync(); load(); } } },
            res.files.map((f) => el('option', { value: f.name, selected: f.name === res.file, text: f.name + (f.key ? ' (' + f.key + ')' : '') }))),
          el('span', { class: 'field-error', 'data-for': 'file', role: 'alert' }));
      }
      const rows = res.packets.map((p) => {
        const tr = el('tr', { 'data-index': p.index, tabindex: 0 },
          el('td', { class: 'num', text: p.index }),
          el('td', { text: p.time.slice(11) }),
          el('td', { text: p.interface }),
          el('td', { class: 'src', text: endpoint(p.src, p.src_port) }),
          el('td', { class: 'dst', text: endpoint(p.dst, p.dst_port) }),
          el('td', { text: p.protocol }),
          el('td', { class: 'num', text: p.length }),
          el('td', { class: 'info', text: p.info }),
          el('td', { class: 'payload', text: p.payload }));
        tr.addEventListener('click', () => showPacket(p.index, tr));
        tr.addEventListener('keydown', (e) => { if (e.key === 'Enter') showPacket(p.index, tr); });
        return tr;
      });
      const from = res.offset + 1, to = res.offset + res.packets.length;
      const notes = [res.packets.length ? 'matching packets ' + from + '–' + to : 'no matching packets' + (res.offset ? ' on this page' : ''),
        'at most ' + res.limit + ' a page'];
      if (res.more) notes.push('more follow');
      if (res.capped) notes.push('the server stopped reading after ' + res.scanned.toLocaleString() + ' packets (it reads at most ' + res.max_scanned_packets.toLocaleString() + ' packets or ' + size(res.max_scanned_bytes) + ' a request): download the file for the rest');
      list.replaceChildren(
        el('p', { class: 'muted', id: 'packet-note', text: notes.join('; ') + '. Click a packet for its headers and bytes.' }),
        el('table', { id: 'packets', 'data-filter': res.filter || '' },
          el('thead', {}, el('tr', {}, ['#', 'Time (UTC)', 'Node/point', 'Source', 'Destination', 'Protocol', 'Length', 'Summary', 'Payload'].map((t) => el('th', { text: t })))),
          el('tbody', {}, rows)),
        el('div', { class: 'buttons' },
          el('button', { type: 'button', id: 'prev-page', disabled: res.offset === 0, text: '← Previous', on: { click: () => { st.offset = Math.max(0, res.offset - res.limit); sync(); load(); } } }),
          el('button', { type: 'button', id: 'next-page', disabled: !res.more, text: 'Next →', on: { click: () => { st.offset = res.offset + res.limit; sync(); load(); } } })));
    }
    const sync = () => {
      const p = new URLSearchParams();
      if (st.filter) p.set('filter', st.filter);
      if (st.file) p.set('file', st.file);
      if (st.offset) p.set('offset', st.offset);
      history.replaceState(null, '', location.pathname + (p.toString() ? '?' + p.toString() : ''));
    };
    form.addEventListener('submit', (ev) => {
      ev.preventDefault();
      st.filter = form.elements.filter.value.trim();
      st.offset = 0;
      detail.replaceChildren();
      sync();
      load();
    });
    await load();
  }

  // --- triggers ----------------------------------------------------------------------------

  // The create body from the trigger form: each input's dotted name is its place in the body
  // (condition.above -> {condition: {above: ..}}); only the fields given.
  function nested(form) {
    const b = {};
    for (const input of form.querySelectorAll('input[name], select[name]')) {
      let v = input.value.trim();
      if (!v) continue;
      const path = input.name.split('.');
      if (input.dataset.list !== undefined) v = v.split(',').map((x) => x.trim()).filter(Boolean);
      else if (input.dataset.number !== undefined && /^-?[0-9.eE+]+$/.test(v)) v = Number(v);
      let o = b;
      for (const k of path.slice(0, -1)) o = o[k] = o[k] || {};
      o[path[path.length - 1]] = v;
    }
    return b;
  }

  function describeTrigger(t) {
    const c = t.condition || {};
    let when = c.metric + ' per ' + c.per;
    if (c.above !== undefined) when += ' above ' + c.above;
    if (c.below !== undefined) when += ' below ' + c.below;
    if (c.above_baseline) when += ' above ' + c.above_baseline.factor + '× baseline (floor ' + c.above_baseline.floor + ')';
    when += ' for ' + c.sustained_seconds + ' s';
    const s = t.scope || {};
    const where = [s.filter, Object.keys(s.filter_v1 || {}).length ? JSON.stringify(s.filter_v1) : null,
      s.colo_name ? 'colo ' + s.colo_name : null, s.nodes ? 'nodes ' + s.nodes.join(',') : null].filter(Boolean).join(' · ');
    return [when, where];
  }

  async function triggers() {
    const num = { 'data-number': true };
    const form = el('form', { id: 'new-trigger', class: 'card', novalidate: true },
      el('h2', { text: 'New trigger' }),
      el('p', { class: 'muted', text: 'When the condition holds on a node, it takes the capture below (the server checks it as POST /pcaps would, with this account\u2019s limits, buckets and prefixes). Give exactly one of above, below or a baseline factor.' }),
      el('div', {},
        field('name', 'Name', { size: 24 }),
        field('scope.filter', 'Watch: filter (tcpdump syntax)', { size: 30, placeholder: 'udp' }),
        field('scope.colo_name', 'Site (colo_name)'),
        field('scope.nodes', 'or nodes (comma-separated)', { 'data-list': true })),
      el('div', {},
        field('condition.metric', 'Metric', { options: ['packets_per_second', 'bits_per_second', 'syn_per_second'], value: 'packets_per_second' }),
        field('condition.per', 'Per', { options: ['destination', 'scope'], value: 'destination' }),
        field('condition.above', 'Above', num),
        field('condition.below', 'Below', num),
        field('condition.above_baseline.factor', 'Baseline factor', num),
        field('condition.above_baseline.floor', 'Baseline floor', num),
        field('condition.sustained_seconds', 'Sustained (s)', Object.assign({ value: '3' }, num))),
      el('div', {},
        field('capture.time_limit', 'Capture time limit (s)', Object.assign({ value: '60' }, num)),
        field('capture.packet_limit', 'Packet limit', Object.assign({ value: '10000' }, num)),
        field('capture.destination_conf', 'Destination', { size: 36, value: localStorage.getItem('edgecap.destination') || '', placeholder: 's3://bucket/dir or file:///path' }),
        field('capture.pre_trigger_seconds', 'Pre-trigger (s)', Object.assign({ value: '10' }, num))),
      el('div', {},
        field('cooldown_seconds', 'Cooldown (s)', Object.assign({ value: '300' }, num)),
        field('budget.captures_per_hour', 'Captures per hour', Object.assign({ value: '4' }, num)),
        field('budget.bytes_per_day', 'Bytes per day', Object.assign({ value: '10000000000' }, num))),
      el('p', { class: 'form-error error', role: 'alert' }),
      el('div', { class: 'buttons' }, el('button', { type: 'submit', id: 'create-trigger', text: 'Create trigger' })));
    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      const r = await api('POST', 'pcaps/triggers', nested(form));
      if (!r.ok) { showErrors(form, r); return; }
      showErrors(form, { json: { errors: [] } });
      await listTriggers(form);
    });
    await listTriggers(form);
  }

  async function listTriggers(form) {
    const r = await api('GET', 'pcaps/triggers');
    if (!r.ok) { setContent(form, el('p', { class: 'error', text: problem(r) })); return; }
    const out = el('p', { class: 'error', id: 'trigger-error', role: 'alert' });
    const rows = r.json.result.map((t) => {
      const [when, where] = describeTrigger(t);
      return el('tr', { 'data-trigger': t.id },
        el('td', { class: 'name', text: t.name || t.id.slice(0, 12) }),
        el('td', { text: when }),
        el('td', { text: where }),
        el('td', { text: t.capture.time_limit + ' s, ' + (t.capture.packet_limit || '–') + ' packets → ' + t.capture.destination_conf }),
        el('td', { text: t.cooldown_seconds + ' s; ' + t.budget.captures_per_hour + '/h' }),
        el('td', { class: 'muted', text: t.created }),
        el('td', {}, el('button', { type: 'button', class: 'delete', text: 'Delete', on: { click: async () => {
          const d = await api('DELETE', 'pcaps/triggers/' + encodeURIComponent(t.id));
          if (!d.ok) { out.textContent = problem(d); return; }
          await listTriggers(form);
        } } })));
    });
    setContent(form,
      el('h2', { text: 'Triggers' }),
      el('p', { class: 'muted', text: 'What a trigger does once stored, and what is not built yet: docs/api.md, \u201cTriggers\u201d.' }),
      el('table', { id: 'triggers' },
        el('thead', {}, el('tr', {}, ['Name', 'Condition', 'Scope', 'Capture', 'Cooldown; budget', 'Created', ''].map((x) => el('th', { text: x })))),
        el('tbody', {}, rows.length ? rows : [el('tr', {}, el('td', { colspan: 7, class: 'muted', text: 'No triggers yet.' }))])),
      out);
  }

  // --- buckets (ownership) -----------------------------------------------------------------

  function challengePlace(o) {
    const d = (o.destination_conf || '').split('?')[0].replace(/\/+$/, '');
    return d + '/' + o.filename;
  }

  async function buckets() {
    const form = el('form', { id: 'new-ownership', class: 'card', novalidate: true },
      el('h2', { text: 'Add a bucket' }),
      el('p', { class: 'muted', text: 'Captures and triggers write only to buckets this account has shown it controls (a file:// directory needs no proof for a capture: it is on the operator\u2019s own machines). Only someone who can read the bucket can know the token:' }),
      el('ol', { class: 'muted steps' },
        el('li', { text: 'Add the bucket\u2019s destination_conf below. The server writes a file named ownership-challenge-<id>.txt, holding a random token, into that directory of the bucket (the list shows where).' }),
        el('li', { text: 'Read that file with your own access to the bucket, for example: aws s3 cp s3://bucket/dir/ownership-challenge-<id>.txt -' }),
        el('li', { text: 'Paste its content into the bucket\u2019s row and validate. Captures may then write there.' })),
      field('destination_conf', 'destination_conf', { size: 60, placeholder: 's3://bucket/dir?region=eu-west-1' }),
      el('p', { class: 'form-error error', role: 'alert' }),
      el('div', { class: 'buttons' }, el('button', { type: 'submit', id: 'add-ownership', text: 'Add and write the challenge' })));
    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      const r = await api('POST', 'pcaps/ownership', { destination_conf: form.elements.destination_conf.value.trim() });
      if (!r.ok) { showErrors(form, r); return; }
      showErrors(form, { json: { errors: [] } });
      await listBuckets(form, r.json.result.id);
    });
    await listBuckets(form, null);
  }

  async function listBuckets(form, added) {
    const r = await api('GET', 'pcaps/ownership');
    if (!r.ok) { setContent(form, el('p', { class: 'error', text: problem(r) })); return; }
    const rows = r.json.result.map((o) => {
      const check = el('form', { class: 'validate', novalidate: true },
        field('ownership_challenge', 'Token from ' + o.filename, { size: 40 }),
        el('p', { class: 'form-error error', role: 'alert' }),
        el('button', { type: 'submit', text: 'Validate' }));
      check.querySelector('input').id = 'f-ownership_challenge-' + o.id;
      check.querySelector('label').setAttribute('for', 'f-ownership_challenge-' + o.id);
      check.addEventListener('submit', async (ev) => {
        ev.preventDefault();
        const v = await api('POST', 'pcaps/ownership/validate', { destination_conf: o.destination_conf, ownership_challenge: check.elements.ownership_challenge.value.trim() });
        if (!v.ok) { showErrors(check, v); return; }
        await listBuckets(form, null);
      });
      return el('tr', { 'data-ownership': o.id, 'data-filename': o.filename, class: o.id === added ? 'added' : null },
        el('td', { text: o.destination_conf }),
        el('td', {}, el('span', { class: 'status ' + o.status, text: o.status })),
        el('td', {}, el('code', { text: challengePlace(o) })),
        el('td', { class: 'muted', text: o.validated || o.submitted }),
        el('td', {}, o.status === 'success' ? null : check,
          el('button', { type: 'button', class: 'delete', text: 'Delete', on: { click: async () => {
            const d = await api('DELETE', 'pcaps/ownership/' + encodeURIComponent(o.id));
            if (d.ok) await listBuckets(form, null);
          } } })));
    });
    setContent(form,
      el('h2', { text: 'Buckets' }),
      el('table', { id: 'ownerships' },
        el('thead', {}, el('tr', {}, ['destination_conf', 'Status', 'Challenge file (read it from the bucket)', 'Since', ''].map((x) => el('th', { text: x })))),
        el('tbody', {}, rows.length ? rows : [el('tr', {}, el('td', { colspan: 5, class: 'muted', text: 'No buckets yet.' }))])));
  }

  // --- events ------------------------------------------------------------------------------

  // Events on the traffic chart: at most this many (the newest that started before the
  // range's end; those that overlap it are drawn).
  const TIMELINE_EVENTS = 50;
  const EVENTS_PER_PAGE = 20;

  function pct(f) {
    return f === undefined || f === null ? '–' : (f * 100).toFixed(1) + '%';
  }

  function eventTitle(e) {
    return (e.trigger_name || e.trigger_id) + (e.key ? ' · ' + e.key : '');
  }

  // An event's signature: the proposed rule (nft and tcpdump expression) and every field with
  // its coverage of the attack and hit rate on the baseline.
  function renderSignature(sig) {
    if (!sig) return el('p', { class: 'muted', text: 'No signature yet (an agent computes it once the capture ends).' });
    const m = sig.mitigation;
    const rule = m ? el('dl', { class: 'facts signature-rule' },
      el('dt', { text: 'tcpdump expression' }), el('dd', {}, el('code', { class: 'expression', text: m.expression })),
      el('dt', { text: 'nft rule' }), el('dd', {}, m.nft.map((r) => el('pre', { class: 'nft', text: r }))),
      el('dt', { text: 'matches' }), el('dd', { text: pct(m.coverage) + ' of the attack' + (m.baseline_hit_rate === null || m.baseline_hit_rate === undefined ? '' : ', ' + pct(m.baseline_hit_rate) + ' of the baseline') }),
      m.dropped && m.dropped.length ? [el('dt', { text: 'left out' }), el('dd', { text: m.dropped.join('; ') })] : null)
      : el('p', { class: 'muted', text: 'No rule proposed.' });
    const fields = el('table', { class: 'signature-fields' },
      el('thead', {}, el('tr', {}, ['Field', 'Value', 'Coverage', 'Baseline', 'Chosen'].map((t) => el('th', { text: t })))),
      el('tbody', {}, (sig.fields || []).map((f) => el('tr', { class: f.chosen ? 'chosen' : null },
        el('td', { text: f.field }),
        el('td', {}, el('code', { text: f.expression || f.value })),
        el('td', { class: 'num', text: pct(f.coverage) }),
        el('td', { class: 'num', text: pct(f.baseline_hit_rate) }),
        el('td', { text: f.chosen ? 'yes' : '' })))));
    return el('div', { class: 'signature' }, rule,
      el('p', { class: 'muted', text: sig.attack_packets + ' attack packets' + (sig.baseline_packets === null || sig.baseline_packets === undefined ? ', no baseline' : ', ' + sig.baseline_packets + ' baseline packets') + (sig.note ? ' · ' + sig.note : '') }),
      el('details', {}, el('summary', { text: 'Fields (' + (sig.fields || []).length + ')' }), fields));
  }

  function renderEvent(e) {
    const captureLinks = (e.captures || []).map((c) => el('li', {},
      el('a', { href: '/captures/' + encodeURIComponent(c.id), class: 'capture-link', text: c.id }),
      ' on ' + c.node + ' · ', el('span', { class: 'status ' + (c.status || ''), text: c.status || 'pending' }),
      c.packets !== null && c.packets !== undefined ? ' · ' + c.packets.toLocaleString() + ' packets' : '',
      c.file ? [' · file ', el('code', { text: c.file })] : '',
      c.error_message ? ' · ' + c.error_message : ''));
    const refusals = (e.refusals || []).map((r) => el('li', { class: 'bad', text: r.node + ' at ' + r.at + ': ' + (r.reason || 'refused') }));
    return el('section', { class: 'card event', id: 'event-' + e.id, 'data-event': e.id },
      el('h2', {}, eventTitle(e), ' ', el('span', { class: e.ended ? 'muted' : 'status running', text: e.ended ? 'ended' : 'ongoing' })),
      el('dl', { class: 'facts' },
        el('dt', { text: 'Trigger' }), el('dd', {}, el('a', { href: '/triggers', text: e.trigger_name || e.trigger_id }), ' ', el('span', { class: 'muted', text: e.trigger_id })),
        el('dt', { text: 'Key' }), el('dd', { text: e.key || 'the whole scope' }),
        el('dt', { text: 'Nodes' }), el('dd', { text: (e.nodes || []).map((n) => n.node + ' (peak ' + n.peak.toLocaleString() + '/s' + (n.ended ? '' : ', holding') + ')').join(', ') }),
        el('dt', { text: 'Start' }), el('dd', { text: e.started }),
        el('dt', { text: 'End' }), el('dd', { text: e.ended || 'ongoing' }),
        el('dt', { text: 'Peak' }), el('dd', { text: e.peak.toLocaleString() + ' /s' }),
        el('dt', { text: 'Traffic' }), el('dd', {}, el('a', { href: '/traffic?' + new URLSearchParams(eventRange(e)).toString(), text: 'show on the traffic chart' }))),
      el('h3', { text: 'Captures' }),
      captureLinks.length ? el('ul', { class: 'captures' }, captureLinks) : el('p', { class: 'muted', text: 'None started.' }),
      refusals.length ? [el('h3', { text: 'Refused' }), el('ul', { class: 'refusals' }, refusals)] : null,
      el('h3', { text: 'Signature' }), renderSignature(e.signature));
  }

  // The traffic range around an event: a minute before its start to a minute after its end
  // (or now).
  function eventRange(e) {
    const a = Math.floor(Date.parse(e.started) / 1000);
    const b = e.ended ? Math.ceil(Date.parse(e.ended) / 1000) : Math.floor(Date.now() / 1000);
    return { since: a - 60, until: Math.max(b, a + 1) + 60 };
  }

  async function events() {
    const q = new URLSearchParams(location.search);
    const page = Math.max(1, Number(q.get('page')) || 1);
    const r = await api('GET', 'events?page=' + page + '&per_page=' + EVENTS_PER_PAGE);
    if (!r.ok) { setContent(el('p', { class: 'error', text: problem(r) })); return; }
    const list = r.json.result;
    const info = r.json.result_info || {};
    const pages = Math.max(1, Math.ceil((info.total_count || 0) / EVENTS_PER_PAGE));
    const nav = el('p', { class: 'pager' },
      page > 1 ? el('a', { class: 'button', href: '/events?page=' + (page - 1), text: '← newer' }) : null,
      el('span', { class: 'muted', text: ' page ' + page + ' of ' + pages + ' · ' + (info.total_count || 0) + ' events ' }),
      page < pages ? el('a', { class: 'button', href: '/events?page=' + (page + 1), text: 'older →' }) : null);
    setContent(nav, el('div', { id: 'events' },
      list.length ? list.map(renderEvent) : el('p', { class: 'muted', text: 'No events yet: a trigger that fires makes one.' })));
    if (location.hash) {
      const target = document.getElementById(location.hash.slice(1));
      if (target) target.scrollIntoView();
    }
  }

  // The events that overlap [since, until]: of the newest TIMELINE_EVENTS that started before
  // `until`, those still ongoing or ended after `since`.
  async function timelineEvents(since, until) {
    const r = await api('GET', 'events?until=' + until + '&per_page=' + TIMELINE_EVENTS);
    if (!r.ok) return { error: problem(r), events: [] };
    const now = Date.now() / 1000;
    const list = r.json.result.filter((e) => {
      const end = e.ended ? Date.parse(e.ended) / 1000 : now;
      return end >= since;
    });
    return { events: list, more: (r.json.result_info || {}).total_count > TIMELINE_EVENTS };
  }

  // Marks the events on the traffic chart's svg: a span from start to end (ongoing: to the
  // range's end), a tooltip and a link to the event.
  function markEvents(box, found, since, until) {
    const s = box.querySelector('svg.chart');
    if (!s) return;
    const W = 900, H = 260, L = 60, B = 24;
    const x = (sec) => L + (Math.min(Math.max(sec, since), until) - since) / Math.max(until - since, 1) * (W - L - 4);
    const now = Date.now() / 1000;
    const layer = svg('g', { class: 'events' });
    for (const e of found.events) {
      const a = Date.parse(e.started) / 1000;
      const b = e.ended ? Date.parse(e.ended) / 1000 : now;
      const x1 = x(a), x2 = Math.max(x(b), x1 + 2);
      const link = svg('a', { href: '/events#event-' + e.id, class: 'event-marker', 'data-event': e.id });
      const rect = svg('rect', { x: x1.toFixed(1), y: 4, width: (x2 - x1).toFixed(1), height: H - B - 4, class: 'event-span' + (e.ended ? '' : ' ongoing') });
      const title = svg('title', {});
      title.textContent = 'event: ' + eventTitle(e) + ', ' + e.started + ' – ' + (e.ended || 'ongoing') + ', peak ' + e.peak.toLocaleString() + '/s';
      rect.append(title);
      link.append(rect);
      // Following the link must not start a brush.
      link.addEventListener('pointerdown', (ev) => ev.stopPropagation());
      layer.append(link);
    }
    s.append(layer);
    const note = found.error ? 'events: ' + found.error
      : found.events.length ? found.events.length + ' event(s) marked (of the newest ' + TIMELINE_EVENTS + ' that started before the range\u2019s end)'
        : 'no events in this range';
    box.append(el('p', { class: 'muted', id: 'chart-events', text: note }));
  }

  // --- start -------------------------------------------------------------------------------

  const views = { fleet, captures, capture, traffic, packets, triggers, buckets, events };
  (views[main.dataset.view] || fleet)().catch((e) => {
    setContent(el('p', { class: 'error', text: 'The dashboard could not load this view: ' + e.message }));
  });
})();
