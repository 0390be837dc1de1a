// The normserve dashboard: plain browser script, no build step, no network beyond this server.
// Charts by uPlot (window.uPlot, served from the uplot npm package). The admin token typed in
// the page lives in a variable only (never stored).
(() => {
  const $ = (id) => document.getElementById(id);
  const state = { model: '', history: [], charts: new Map(), width: 0 };
  const POLL_MS = 1000;
  // The pictures every fifth poll: the server draws them on its event loop, in turns of a few
  // milliseconds but ~50 ms of work in all for a convolutional model's 256 rows while traffic
  // flows (docs/drift.md), which a poll a second would spend every second. The drift score keeps
  // the one-second poll.
  const LAYERS_EVERY_POLLS = 5;

  function status(text, error = false) {
    const el = $('status');
    el.textContent = text;
    el.className = error ? 'error' : '';
  }

  async function getJson(url) {
    const res = await fetch(url, { headers: { accept: 'application/json' } });
    if (!res.ok) throw new Error(`${url}: ${res.status}`);
    return res.json();
  }

  async function admin(url, init) {
    const token = $('token').value;
    if (!token) throw new Error('enter the admin token first');
    const res = await fetch(url, {
      ...init,
      headers: { ...(init.headers ?? {}), authorization: `Bearer ${token}` },
    });
    const body = await res.json().catch(() => ({}));
    if (!res.ok) throw new Error(body.detail ?? `${res.status}`);
    return body;
  }

  function cell(row, text, className) {
    const td = document.createElement('td');
    td.textContent = text;
    if (className) td.className = className;
    row.appendChild(td);
    return td;
  }

  async function loadModels() {
    const { models } = await getJson('/v1/models');
    const select = $('model');
    select.replaceChildren(
      ...models.map((m) => {
        const o = document.createElement('option');
        o.value = m.name;
        o.textContent = m.name;
        return o;
      }),
    );
    if (!state.model && models.length > 0) state.model = models[0].name;
    select.value = state.model;
  }

  async function refreshVersions() {
    const listing = await getJson(`/v1/models/${encodeURIComponent(state.model)}/versions`);
    const tbody = $('versions').querySelector('tbody');
    const rows = [];
    for (const v of listing.versions) {
      const tr = document.createElement('tr');
      tr.dataset.version = String(v.version);
      tr.dataset.active = String(v.active);
      cell(tr, `${v.version}${v.active ? ' (active)' : ''}`);
      cell(tr, v.state);
      let provenance = '';
      if (v.state === 'AVAILABLE') {
        const meta = await getJson(
          `/v1/models/${encodeURIComponent(state.model)}/versions/${v.version}/metadata`,
        );
        const p = meta.provenance;
        provenance = p
          ? [
              p.kind,
              p.source && `source ${p.source}`,
              p.parent_version && `from version ${p.parent_version}`,
              p.mode,
              p.samples && `${p.samples} samples`,
              p.created_at,
              p.note,
            ]
              .filter(Boolean)
              .join(' · ')
          : 'trained';
      } else provenance = v.reason ?? '';
      cell(tr, provenance, 'provenance');
      const td = cell(tr, '');
      if (!v.active && v.state === 'AVAILABLE') {
        const button = document.createElement('button');
        button.type = 'button';
        button.className = 'activate';
        button.textContent = `Activate ${v.version}`;
        button.addEventListener('click', () => activate(v.version));
        td.appendChild(button);
      }
      rows.push(tr);
    }
    tbody.replaceChildren(...rows);
  }

  async function activate(version) {
    try {
      const r = await admin(
        `/v1/models/${encodeURIComponent(state.model)}/versions/${version}:activate`,
        { method: 'POST' },
      );
      status(`version ${r.active_version} active (was ${r.previous_version})`);
      await refreshVersions();
    } catch (e) {
      status(`activate failed: ${e.message}`, true);
    }
  }

  function rowsOfFile(name, text) {
    const lines = text.split(/\r?\n/).filter((l) => l.trim() !== '');
    if (/\.csv$/i.test(name)) {
      const width = state.width;
      return lines.slice(1).map((l) => l.split(',').slice(0, width).map(Number));
    }
    if (/\.json$/i.test(name)) {
      const v = JSON.parse(text);
      return Array.isArray(v) ? v : v.instances;
    }
    return lines.map((l) => JSON.parse(l));
  }

  async function recalibrate(event) {
    event.preventDefault();
    const file = $('recalibrate-file').files[0];
    if (!file) return status('choose a file of rows first', true);
    try {
      const instances = rowsOfFile(file.name, await file.text());
      status(`recalibrating on ${instances.length} rows…`);
      const r = await admin(`/v1/models/${encodeURIComponent(state.model)}:recalibrate`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ instances }),
      });
      status(
        `version ${r.version} published from ${r.samples} rows${r.activated ? ' and active' : ''}`,
      );
      await refreshVersions();
    } catch (e) {
      status(`recalibration failed: ${e.message}`, true);
    }
  }

  function chart(key, container, opts, data) {
    let c = state.charts.get(key);
    if (c && c.series.length !== opts.series.length) {
      c.destroy();
      c = undefined;
    }
    if (!c) {
      c = new uPlot(opts, data, container);
      state.charts.set(key, c);
    } else c.setData(data);
    return c;
  }

  /** A vertical line at x (the ReLU threshold at 0). */
  const markerAt = (x, color) => (u) => {
    const px = u.valToPos(x, 'x', true);
    const ctx = u.ctx;
    ctx.save();
    ctx.strokeStyle = color;
    ctx.lineWidth = 2;
    ctx.setLineDash([6, 4]);
    ctx.beginPath();
    ctx.moveTo(px, u.bbox.top);
    ctx.lineTo(px, u.bbox.top + u.bbox.height);
    ctx.stroke();
    ctx.restore();
  };

  function histogramData(h) {
    const step = (h.max - h.min) / h.counts.length;
    return [h.counts.map((_, i) => h.min + (i + 0.5) * step), h.counts];
  }

  async function refreshDrift() {
    const report = await getJson(`/v1/models/${encodeURIComponent(state.model)}/drift`);
    const a = report.active;
    $('drift-threshold').textContent = String(report.threshold);
    $('drift-rows').textContent = String(a ? a.rows : 0);
    $('drift-score').textContent = a ? a.score.toFixed(3) : '–';
    $('drift-score').dataset.score = a ? String(a.score) : '';
    $('drift-recommended').hidden = !a?.recommended;
    if (a) state.history.push([Date.now() / 1000, a.score, report.threshold]);
    if (state.history.length > 600) state.history.shift();
    const el = $('drift-chart');
    el.dataset.points = String(state.history.length);
    if (state.history.length > 0) {
      chart(
        'drift',
        el,
        {
          width: 720,
          height: 200,
          series: [
            {},
            { label: 'drift score', stroke: '#c0392b', width: 2 },
            { label: 'threshold', stroke: '#7f8c8d', dash: [6, 4] },
          ],
        },
        [
          state.history.map((p) => p[0]),
          state.history.map((p) => p[1]),
          state.history.map((p) => p[2]),
        ],
      );
    }
    const tbody = $('drift-layers').querySelector('tbody');
    tbody.replaceChildren(
      ...(a ? a.layers : []).map((l) => {
        const tr = document.createElement('tr');
        cell(tr, l.path);
        cell(tr, l.mean_shift.toFixed(3));
        cell(tr, l.log_std_ratio.toFixed(3));
        cell(tr, l.score.toFixed(3));
        return tr;
      }),
    );
  }

  async function refreshLayers() {
    const pictures = await getJson(`/v1/models/${encodeURIComponent(state.model)}/drift/layers`);
    $('layers-note').textContent =
      pictures.rows === 0
        ? 'No traffic yet.'
        : `Version ${pictures.version}, the last ${pictures.rows} rows served. Dashed: the ReLU threshold at 0.`;
    const root = $('layers');
    for (const layer of pictures.layers) {
      let box = root.querySelector(`[data-layer="${CSS.escape(layer.path)}"]`);
      if (!box) {
        box = document.createElement('div');
        box.className = 'layer';
        box.dataset.layer = layer.path;
        const h = document.createElement('h3');
        h.textContent = `BatchNorm ${layer.path} (${layer.channels} channels)`;
        box.appendChild(h);
        for (const part of ['before', 'after', 'stats']) {
          const d = document.createElement('div');
          d.className = `chart ${part}`;
          box.appendChild(d);
        }
        root.appendChild(box);
      }
      box.dataset.rows = String(pictures.rows);
      const bars = uPlot.paths.bars({ size: [0.9, 100] });
      const [bx, by] = histogramData(layer.before);
      chart(
        `${layer.path} before`,
        box.querySelector('.before'),
        {
          title: 'inputs before BatchNorm',
          scales: { x: { time: false } },
          width: 340,
          height: 180,
          series: [
            { label: 'value' },
            {
              label: 'count',
              fill: '#5b8def88',
              stroke: '#5b8def',
              paths: bars,
              points: { show: false },
            },
          ],
        },
        [bx, by],
      );
      const [ax, ay] = histogramData(layer.after);
      chart(
        `${layer.path} after`,
        box.querySelector('.after'),
        {
          title: `after BatchNorm (${(layer.below_zero * 100).toFixed(1)} % below 0)`,
          scales: { x: { time: false } },
          width: 340,
          height: 180,
          series: [
            { label: 'value' },
            {
              label: 'count',
              fill: '#27ae6088',
              stroke: '#27ae60',
              paths: bars,
              points: { show: false },
            },
          ],
          hooks: { draw: [markerAt(0, '#c0392b')] },
        },
        [ax, ay],
      );
      const idx = layer.running.mean.map((_, i) => i);
      chart(
        `${layer.path} stats`,
        box.querySelector('.stats'),
        {
          title: 'per channel: running vs live',
          width: 340,
          height: 180,
          scales: { x: { time: false } },
          series: [
            { label: 'channel' },
            { label: 'running mean', stroke: '#7f8c8d', points: { show: false } },
            { label: 'live mean', stroke: '#c0392b', points: { show: false } },
            { label: 'running std', stroke: '#7f8c8d', dash: [4, 4], points: { show: false } },
            { label: 'live std', stroke: '#e67e22', dash: [4, 4], points: { show: false } },
          ],
        },
        [idx, layer.running.mean, layer.live.mean, layer.running.std, layer.live.std],
      );
      box.querySelector('.before').dataset.total = String(by.reduce((s, v) => s + v, 0));
    }
  }

  async function refresh(layers = true) {
    try {
      await refreshDrift();
      if (layers) await refreshLayers();
    } catch (e) {
      status(`refresh failed: ${e.message}`, true);
    }
  }

  async function selectModel(name) {
    state.model = name;
    state.history = [];
    for (const c of state.charts.values()) c.destroy();
    state.charts.clear();
    $('layers').replaceChildren();
    const meta = await getJson(`/v1/models/${encodeURIComponent(name)}/metadata`);
    state.width = (meta.input_shape ?? []).reduce((a, b) => a * b, 1);
    await refreshVersions();
    await refresh();
  }

  async function start() {
    $('model').addEventListener('change', (e) => selectModel(e.target.value));
    $('recalibrate').addEventListener('submit', recalibrate);
    await loadModels();
    if (state.model) await selectModel(state.model);
    let polls = 0;
    // One refresh at a time: the next starts POLL_MS after the last one finished.
    const tick = async () => {
      ++polls;
      await refresh(polls % LAYERS_EVERY_POLLS === 0);
      if (polls % 5 === 0) await refreshVersions().catch(() => {});
      setTimeout(tick, POLL_MS);
    };
    setTimeout(tick, POLL_MS);
    document.body.dataset.ready = 'true';
  }

  start().catch((e) => status(`dashboard failed to start: ${e.message}`, true));
})();
