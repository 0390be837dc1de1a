// The normserve dashboard: plain browser script, no build step, no network beyond this server.
// Charts by uPlot (window.uPlot, served from the uplot npm package). The admin token typed in
// the page lives in its field only (never stored). With API_TOKEN set, the routes drawn from the
// prediction traffic (drift, BatchNorm pictures) answer 401 without it: the page then asks for the
// API token once and keeps it for the tab (sessionStorage), sent as `Authorization: Bearer`, never
// in a URL; without API_TOKEN no 401 comes and nothing is asked.
(() => {
  const $ = (id) => document.getElementById(id);
  // model: the one shown; available: whether it serves a version (its versions listing; undefined
  // until read);
  // problem: why it cannot be shown (the server's problem detail); refreshError: the last
  // refresh's failure, cleared by the next refresh that succeeds or by choosing another model.
  const state = {
    model: '',
    available: undefined,
    listed: '',
    problem: '',
    problemOf: '',
    refreshError: '',
    history: [],
    charts: new Map(),
    /** A token the server refused was forgotten; said until another is given. */
    apiTokenRefused: false,
  };
  const POLL_MS = 1000;
  // The model list and the versions table every fifth poll too.
  const VERSIONS_EVERY_POLLS = 5;
  // The pictures every fifth poll: the server draws them on its event loop, in turns of a few
  // milliseconds but ~50 ms of work in all for a convolutional model's 256 rows while traffic
  // flows (docs/drift.md), which a poll a second would spend every second. The drift score keeps
  // the one-second poll.
  const LAYERS_EVERY_POLLS = 5;
  /** A BatchNorm's three charts side by side on a wide screen, one under the other on a phone. */
  const LAYER_CHART_WIDTH = 340;

  function status(text, error = false) {
    const el = $('status');
    el.textContent = text;
    el.className = error ? 'error' : '';
  }

  /** The server's words for a failed response: its problem document's detail (RFC 9457). */
  async function failure(url, res) {
    const body = await res.json().catch(() => ({}));
    return new Error(body.detail ?? `${url}: ${res.status}`);
  }

  const API_TOKEN_KEY = 'normserve.apiToken';
  const apiToken = () => sessionStorage.getItem(API_TOKEN_KEY) ?? '';

  /**
   * A 401 of a data route (`sent`: the token it carried): the API token field is shown, once (it
   * stays until a token is given). A token the server refused (a stale or mistyped one) is
   * forgotten, so it is asked for again; a 401 of a request that left before the token held now
   * was given asks nothing (the next request carries it).
   */
  function askForApiToken(sent) {
    const held = apiToken();
    if (held && held !== sent) return;
    if (held) {
      sessionStorage.removeItem(API_TOKEN_KEY);
      // Said until another token is given, not only on the one poll that carried it (h265).
      state.apiTokenRefused = true;
    }
    const form = $('api-token-form');
    if (!form.hidden) return;
    form.hidden = false;
    if (document.activeElement === document.body) $('api-token').focus();
  }

  function useApiToken(event) {
    event.preventDefault();
    const token = $('api-token').value.trim();
    if (!token) return;
    sessionStorage.setItem(API_TOKEN_KEY, token);
    state.apiTokenRefused = false;
    $('api-token').value = '';
    $('api-token-form').hidden = true;
  }

  /** A data route's JSON, with the API token when the tab holds one. */
  async function getJson(url) {
    const sent = apiToken();
    const headers = { accept: 'application/json' };
    if (sent) headers.authorization = `Bearer ${sent}`;
    const res = await fetch(url, { headers });
    if (res.status === 401) {
      askForApiToken(sent);
      const detail = (await failure(url, res)).message;
      const ask =
        sent || state.apiTokenRefused
          ? 'the API token was refused: enter it again'
          : 'enter the API token';
      throw new Error(`${detail} (${ask})`);
    }
    if (!res.ok) throw await failure(url, res);
    return res.json();
  }

  /** The status and body of an admin request (a failure throws the server's detail). */
  async function adminResponse(url, init) {
    const token = $('token').value;
    if (!token) throw new Error('enter the admin token first');
    const res = await fetch(url, {
      ...init,
      headers: { ...(init.headers ?? {}), authorization: `Bearer ${token}` },
    });
    if (!res.ok) throw await failure(url, res);
    return { status: res.status, body: await res.json() };
  }

  async function admin(url, init) {
    return (await adminResponse(url, init)).body;
  }

  /** The model's problem, else the last refresh's failure, in the page; nothing when all is well. */
  function showProblem() {
    const text = (state.available === false && state.problem) || state.refreshError;
    const el = $('model-problem');
    el.textContent = text;
    el.hidden = !text;
  }

  function cell(row, text, className) {
    const td = document.createElement('td');
    td.textContent = text;
    if (className) td.className = className;
    row.appendChild(td);
    return td;
  }

  /**
   * The model list. At the start, the first model that serves a version is shown (one whose
   * versions all failed to load could show nothing but its problem), else the first.
   */
  async function loadModels() {
    const { models } = await getJson('/v1/models');
    const select = $('model');
    const listed = JSON.stringify(models.map((m) => [m.name, m.state]));
    // Unchanged, the options stay as they are (a list the user holds open stays open).
    if (listed !== state.listed) {
      state.listed = listed;
      select.replaceChildren(
        ...models.map((m) => {
          const o = document.createElement('option');
          o.value = m.name;
          o.textContent = m.state === 'AVAILABLE' ? m.name : `${m.name} (unavailable)`;
          return o;
        }),
      );
    }
    if (!state.model && models.length > 0)
      state.model = (models.find((m) => m.state === 'AVAILABLE') ?? models[0]).name;
    select.value = state.model;
  }

  /**
   * Why a model without an available version cannot be shown, in the server's words: the
   * problem its metadata answers (503 MODEL_UNAVAILABLE, naming each version's failure). Asked
   * again only when its versions change.
   */
  async function learnProblem(model, versions) {
    const key = JSON.stringify(versions);
    if (state.problemOf === key) return;
    let problem = '';
    try {
      await getJson(`/v1/models/${encodeURIComponent(model)}/metadata`);
    } catch (e) {
      problem = e.message;
    }
    if (model !== state.model) return;
    state.problem = problem;
    state.problemOf = key;
  }

  async function refreshVersions() {
    const model = state.model;
    const listing = await getJson(`/v1/models/${encodeURIComponent(model)}/versions`);
    if (model !== state.model) return;
    state.available = listing.active_version !== null;
    if (state.available) state.problemOf = '';
    else await learnProblem(model, listing.versions);
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
          `/v1/models/${encodeURIComponent(model)}/versions/${v.version}/metadata`,
        );
        const p = meta.provenance;
        // Each fact one unbreakable piece ("360 samples" never split over two lines); the
        // free-text source and note may wrap anywhere (dashboard.css).
        provenance = p
          ? [
              [p.kind],
              [p.source && `source ${p.source}`, 'text'],
              [p.parent_version && `from version ${p.parent_version}`],
              [p.mode],
              [p.samples && `${p.samples} samples`],
              [p.created_at],
              [p.note, 'text'],
            ]
              .filter(([text]) => text)
              .map(([text, kind]) => {
                const span = document.createElement('span');
                span.className = kind ?? 'fact';
                span.textContent = text;
                return span;
              })
          : 'trained';
      } else provenance = v.reason ?? '';
      const td = cell(tr, '', 'provenance');
      if (Array.isArray(provenance))
        provenance.forEach((span, i) => {
          if (i > 0) td.append(' · ');
          td.append(span);
        });
      else td.textContent = provenance;
      const actions = cell(tr, '');
      if (!v.active && v.state === 'AVAILABLE') {
        const button = document.createElement('button');
        button.type = 'button';
        button.className = 'activate';
        button.textContent = `Activate ${v.version}`;
        button.addEventListener('click', () => activate(v.version));
        actions.appendChild(button);
      }
      rows.push(tr);
    }
    if (model !== state.model) return;
    tbody.replaceChildren(...rows);
    showProblem();
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

  const CSV = 'text/csv';
  const NDJSON = 'application/x-ndjson';
  const JSON_TYPE = 'application/json';
  const FILE_TYPES = [
    [/\.csv$/i, CSV],
    [/\.(ndjson|jsonl)$/i, NDJSON],
    [/\.json$/i, JSON_TYPE],
  ];

  /**
   * The request a chosen file becomes. The page reads no rows itself: CSV and NDJSON files are
   * sent as they are, so the server applies its one column rule (docs/recalibration.md: a CSV's
   * columns by the model's feature names, else all but the label) and names a bad line. A JSON
   * file is a request body, or a bare array of rows, sent as its `instances`.
   */
  async function uploadOf(file) {
    const type =
      FILE_TYPES.find(([re]) => re.test(file.name))?.[1] ??
      [CSV, NDJSON, JSON_TYPE].find((t) => file.type === t);
    if (!type) throw new Error(`${file.name}: choose a .csv, .ndjson, .jsonl or .json file`);
    if (type !== JSON_TYPE) return { type, body: file };
    const text = await file.text();
    return { type, body: text.trimStart().startsWith('[') ? `{"instances":${text}}` : text };
  }

  /** A recalibration answered 202 runs as a job: its record, asked every second until it ends. */
  async function jobOutcome(location) {
    for (;;) {
      const job = await admin(location, { method: 'GET' });
      if (job.state === 'succeeded') return job.result;
      if (job.state === 'failed') throw new Error(job.error?.message ?? `job ${job.id} failed`);
      status(`recalibrating: ${job.phase}, ${job.progress.rows} rows…`);
      await new Promise((resolve) => setTimeout(resolve, POLL_MS));
    }
  }

  async function recalibrate(event) {
    event.preventDefault();
    const file = $('recalibrate-file').files[0];
    if (!file) return status('choose a file of rows first', true);
    const model = state.model;
    try {
      const { type, body } = await uploadOf(file);
      status(`recalibrating ${model} on ${file.name}…`);
      const res = await adminResponse(`/v1/models/${encodeURIComponent(model)}:recalibrate`, {
        method: 'POST',
        headers: { 'content-type': type },
        body,
      });
      const r = res.status === 202 ? await jobOutcome(res.body.location) : res.body;
      status(
        `version ${r.version} published from ${r.samples} rows${r.activated ? ' and active' : ''}`,
      );
      await refreshVersions();
    } catch (e) {
      status(`recalibration failed: ${e.message}`, true);
    }
  }

  /**
   * The y axis' width in CSS pixels, from its longest tick label (uPlot's default, 50 px, cuts
   * "15,000" to "5,000"): uPlot's axis auto-size demo (demos/axis-autosize.html). After two
   * rounds the size it has is kept, so the layout converges.
   */
  function axisSize(u, values, axisIdx, cycleNum) {
    const axis = u.axes[axisIdx];
    if (cycleNum > 1) return axis._size;
    let size = axis.ticks.size + axis.gap;
    const longest = (values ?? []).reduce(
      (a, v) => (String(v).length > a.length ? String(v) : a),
      '',
    );
    if (longest !== '') {
      u.ctx.font = axis.font[0];
      size += u.ctx.measureText(longest).width / devicePixelRatio;
    }
    return Math.ceil(size);
  }

  /**
   * The drift chart's y axis: wide enough for its own labels and for half the widest time label,
   * which is centred on its tick and may sit at the plot's left edge (its left end was cut off at
   * the chart's edge: "0:03:35 AM" for "10:03:35 AM", newcomer review of 2026-12-06). The time
   * labels come first: uPlot sizes the axes in their order, x before y.
   */
  function driftAxisSize(u, values, axisIdx, cycleNum) {
    const size = axisSize(u, values, axisIdx, cycleNum);
    // The chart's element, not u.root's parent, which is not yet set when uPlot first sizes the
    // axes of a new chart (u.root.parentElement was null: the page's refresh failed).
    const labels = ($('drift-chart').dataset.xLabels ?? '').split('|');
    u.ctx.font = u.axes[0].font[0];
    const widest = Math.max(0, ...labels.map((l) => u.ctx.measureText(l).width / devicePixelRatio));
    return Math.max(size, Math.ceil(widest / 2) + 2);
  }

  /** Whole seconds at least between the drift chart's time ticks (uPlot would label ":59.500"). */
  const SECOND_INCRS = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200];

  /** The drift chart's time ticks: the time of day in the browser's locale, seconds included. */
  const TICK_TIME = new Intl.DateTimeFormat(undefined, {
    hour: 'numeric',
    minute: '2-digit',
    second: '2-digit',
  });

  /** The same with the date, for a tick that starts a day. */
  const TICK_DATE_TIME = new Intl.DateTimeFormat(undefined, {
    month: 'short',
    day: 'numeric',
    hour: 'numeric',
    minute: '2-digit',
  });

  /**
   * One line per tick, each the whole time ("4:21:33 AM"): uPlot's default put ":33" under each
   * tick and the date under the first, centred on it, whose left end was cut off at the chart's
   * edge ("2/4/26 4:21am", newcomer review of 2026-12-04). The labels are kept on the chart's
   * element (data-x-labels) for the browser test.
   */
  function timeTicks(u, splits) {
    // The chart holds the last 600 polls; when they cross midnight, the first tick and each one
    // that starts a day carry the date.
    const day = (s) => new Date(s * 1000).toDateString();
    const spansDays = splits.length > 0 && day(splits[0]) !== day(splits[splits.length - 1]);
    const labels = splits.map((s, i) =>
      spansDays && (i === 0 || day(s) !== day(splits[i - 1]))
        ? TICK_DATE_TIME.format(new Date(s * 1000))
        : TICK_TIME.format(new Date(s * 1000)),
    );
    u.root.parentElement.dataset.xLabels = labels.join('|');
    return labels;
  }

  /**
   * A histogram's x range: its first and last bin centres padded by half a bin, so the end bars
   * are drawn whole.
   */
  function binRange(u, min, max) {
    const n = u.data[0].length;
    const half = n > 1 ? (max - min) / (n - 1) / 2 : 0.5;
    return [min - half, max + half];
  }

  /**
   * A chart's width: `max` CSS pixels, or the width of the box that holds its container (the
   * drift section, a layer's row) where that is narrower, as on a phone.
   */
  const widthIn = (container, max) =>
    Math.max(160, Math.min(max, container.parentElement.clientWidth));

  function chart(key, container, opts, data, maxWidth) {
    let c = state.charts.get(key);
    if (c && c.series.length !== opts.series.length) {
      c.destroy();
      c = undefined;
    }
    const width = widthIn(container, maxWidth);
    // A canvas says nothing to a screen reader: the chart is named (its title, else its
    // series); the numbers are in the tables beside it.
    container.setAttribute('role', 'img');
    container.setAttribute(
      'aria-label',
      opts.title ??
        opts.series
          .slice(1)
          .map((s) => s.label)
          .join(', '),
    );
    if (!c) {
      c = new uPlot({ ...opts, width }, data, container);
      c.maxWidth = maxWidth;
      state.charts.set(key, c);
    } else {
      c.setData(data);
      // uPlot applies opts.title once, when it makes the chart: a title computed from the data
      // (the share below 0) is written again with each update.
      const title = c.root.querySelector('.u-title');
      if (title && opts.title !== undefined) title.textContent = opts.title;
      if (c.width !== width) c.setSize({ width, height: c.height });
    }
    return c;
  }

  /** Every chart follows its container's width when the window is resized. */
  function fitCharts() {
    for (const c of state.charts.values()) {
      const width = widthIn(c.root.parentElement, c.maxWidth);
      if (c.width !== width) c.setSize({ width, height: c.height });
    }
  }

  /** A vertical line at x (0: where a ReLU after the BatchNorm would cut). */
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
    const model = state.model;
    const report = await getJson(`/v1/models/${encodeURIComponent(model)}/drift`);
    if (model !== state.model) return;
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
          height: 200,
          series: [
            {},
            { label: 'drift score', stroke: '#c0392b', width: 2 },
            { label: 'threshold', stroke: '#7f8c8d', dash: [6, 4] },
          ],
          // 90 px between ticks: a label is up to ~70 px wide ("12:59:59 PM").
          axes: [{ incrs: SECOND_INCRS, values: timeTicks, space: 90 }, { size: driftAxisSize }],
        },
        [
          state.history.map((p) => p[0]),
          state.history.map((p) => p[1]),
          state.history.map((p) => p[2]),
        ],
        720,
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
    const model = state.model;
    if (state.available === false) {
      $('layers-note').textContent = 'No version of this model is served.';
      return;
    }
    const pictures = await getJson(`/v1/models/${encodeURIComponent(model)}/drift/layers`);
    if (model !== state.model) return;
    // The route names no layer after a BatchNorm, so the dashed line is worded for any layer: 0
    // is where a ReLU that follows would cut.
    // Workers whose rows are not drawn say why (another version loaded since a rollback): "No
    // traffic yet" beside a drift score over 200 rows read as a contradiction (h265).
    const leftOut = (pictures.workers_left_out ?? []).map((w) => w.reason);
    const unique = [...new Set(leftOut)];
    $('layers-note').textContent =
      pictures.rows === 0
        ? unique.length > 0
          ? `No rows of version ${pictures.version} to draw yet: ${unique.join('; ')}.`
          : 'No traffic yet.'
        : pictures.layers.length === 0
          ? 'This model has no BatchNorm layer: there is nothing to chart here.'
          : `Version ${pictures.version}, the last ${pictures.rows} rows served. Dashed: 0, below which a ReLU following the BatchNorm would output 0.`;
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
          scales: { x: { time: false, range: binRange } },
          axes: [{}, { size: axisSize }],
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
        LAYER_CHART_WIDTH,
      );
      const [ax, ay] = histogramData(layer.after);
      chart(
        `${layer.path} after`,
        box.querySelector('.after'),
        {
          title: `after BatchNorm (${(layer.below_zero * 100).toFixed(1)} % below 0)`,
          scales: { x: { time: false, range: binRange } },
          axes: [{}, { size: axisSize }],
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
        LAYER_CHART_WIDTH,
      );
      const idx = layer.running.mean.map((_, i) => i);
      chart(
        `${layer.path} stats`,
        box.querySelector('.stats'),
        {
          title: 'per channel: running vs live',
          height: 180,
          scales: { x: { time: false } },
          axes: [{}, { size: axisSize }],
          series: [
            { label: 'channel' },
            { label: 'running mean', stroke: '#7f8c8d', points: { show: false } },
            { label: 'live mean', stroke: '#c0392b', points: { show: false } },
            { label: 'running std', stroke: '#7f8c8d', dash: [4, 4], points: { show: false } },
            { label: 'live std', stroke: '#e67e22', dash: [4, 4], points: { show: false } },
          ],
        },
        [idx, layer.running.mean, layer.live.mean, layer.running.std, layer.live.std],
        LAYER_CHART_WIDTH,
      );
      box.querySelector('.before').dataset.total = String(by.reduce((s, v) => s + v, 0));
    }
  }

  /**
   * One refresh of what the page shows of the current model. A failure is shown until a later
   * refresh of the same model succeeds or another model is chosen; one of a model no longer
   * shown is dropped.
   */
  async function refresh({ versions = false, layers = true } = {}) {
    const model = state.model;
    if (!model) {
      // No list yet (the server had none, or failed to answer): asked for with the versions.
      if (!versions) return;
      try {
        await loadModels();
        state.refreshError = '';
      } catch (e) {
        state.refreshError = `refresh failed: ${e.message}`;
      }
      showProblem();
      if (state.model) await selectModel(state.model);
      return;
    }
    try {
      if (versions) {
        await loadModels();
        await refreshVersions();
      }
      await refreshDrift();
      if (layers) await refreshLayers();
      if (model === state.model) state.refreshError = '';
    } catch (e) {
      if (model === state.model) state.refreshError = `refresh failed: ${e.message}`;
    }
    if (model === state.model) showProblem();
  }

  async function selectModel(name) {
    state.model = name;
    state.available = undefined;
    state.problem = '';
    state.problemOf = '';
    state.refreshError = '';
    state.history = [];
    for (const c of state.charts.values()) c.destroy();
    state.charts.clear();
    $('layers').replaceChildren();
    $('layers-note').textContent = '';
    $('versions').querySelector('tbody').replaceChildren();
    // A file chosen for the model before is not this one's rows: a click would recalibrate this
    // model on them.
    $('recalibrate-file').value = '';
    // An error shown for the model before is not this one's.
    if ($('status').className === 'error') status('');
    showProblem();
    await refresh({ versions: true });
  }

  async function start() {
    $('model').addEventListener('change', (e) => selectModel(e.target.value));
    $('recalibrate').addEventListener('submit', recalibrate);
    $('api-token-form').addEventListener('submit', useApiToken);
    window.addEventListener('resize', fitCharts);
    try {
      await loadModels();
    } catch (e) {
      // The list is asked for again with every versions refresh below.
      state.refreshError = `refresh failed: ${e.message}`;
      showProblem();
    }
    if (state.model) await selectModel(state.model);
    let polls = 0;
    // One refresh at a time: the next starts POLL_MS after the last one finished, whatever the
    // last one met (refresh never throws).
    const tick = async () => {
      ++polls;
      await refresh({
        versions: polls % VERSIONS_EVERY_POLLS === 0,
        layers: polls % LAYERS_EVERY_POLLS === 0,
      });
      setTimeout(tick, POLL_MS);
    };
    setTimeout(tick, POLL_MS);
    document.body.dataset.ready = 'true';
  }

  start().catch((e) => status(`dashboard failed to start: ${e.message}`, true));
})();
