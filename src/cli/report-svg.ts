import { escapeMarkup } from '../http/views/escape-markup.js';
import type { ModelReport } from '../service/index.js';

type Picture = ModelReport['pictures'][number];
type Histogram = Picture['before'];

const W = 420;
const H = 220;
const PAD = { left: 48, right: 12, top: 28, bottom: 34 };

/** A number for an axis label: 3 significant digits, no exponent for ordinary values. */
const tick = (v: number): string =>
  Math.abs(v) >= 1e4 || (Math.abs(v) < 1e-2 && v !== 0)
    ? v.toExponential(1)
    : String(Number(v.toPrecision(3)));

function frame(
  title: string,
  body: string,
  xMin: number,
  xMax: number,
  yMin: number,
  yMax: number,
): string {
  const plotW = W - PAD.left - PAD.right;
  const plotH = H - PAD.top - PAD.bottom;
  const axes = [
    `<line x1="${PAD.left}" y1="${PAD.top + plotH}" x2="${PAD.left + plotW}" y2="${PAD.top + plotH}" stroke="#555"/>`,
    `<line x1="${PAD.left}" y1="${PAD.top}" x2="${PAD.left}" y2="${PAD.top + plotH}" stroke="#555"/>`,
    `<text x="${PAD.left}" y="${H - 10}" font-size="11">${escapeMarkup(tick(xMin))}</text>`,
    `<text x="${PAD.left + plotW}" y="${H - 10}" font-size="11" text-anchor="end">${escapeMarkup(tick(xMax))}</text>`,
    `<text x="${PAD.left - 4}" y="${PAD.top + 10}" font-size="11" text-anchor="end">${escapeMarkup(tick(yMax))}</text>`,
    `<text x="${PAD.left - 4}" y="${PAD.top + plotH}" font-size="11" text-anchor="end">${escapeMarkup(tick(yMin))}</text>`,
  ].join('');
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif"><title>${escapeMarkup(title)}</title><text x="${W / 2}" y="16" font-size="13" text-anchor="middle">${escapeMarkup(title)}</text>${axes}${body}</svg>\n`;
}

/** A histogram as bars; `marker` draws a dashed vertical line at that value (the ReLU's 0). */
export function histogramSvg(h: Histogram, title: string, color: string, marker?: number): string {
  const plotW = W - PAD.left - PAD.right;
  const plotH = H - PAD.top - PAD.bottom;
  const max = Math.max(1, ...h.counts);
  const barW = plotW / h.counts.length;
  const bars = h.counts
    .map((c, i) => {
      const bh = (c / max) * plotH;
      return `<rect x="${(PAD.left + i * barW).toFixed(2)}" y="${(PAD.top + plotH - bh).toFixed(2)}" width="${Math.max(0.5, barW - 1).toFixed(2)}" height="${bh.toFixed(2)}" fill="${color}"/>`;
    })
    .join('');
  let line = '';
  if (marker !== undefined && marker >= h.min && marker <= h.max) {
    const x = PAD.left + ((marker - h.min) / (h.max - h.min)) * plotW;
    line = `<line x1="${x.toFixed(2)}" y1="${PAD.top}" x2="${x.toFixed(2)}" y2="${PAD.top + plotH}" stroke="#c0392b" stroke-width="2" stroke-dasharray="6 4"/>`;
  }
  return frame(title, bars + line, h.min, h.max, 0, max);
}

/** Per channel, running against live mean (solid) and standard deviation (dashed). */
export function channelStatsSvg(p: Picture): string {
  const plotW = W - PAD.left - PAD.right;
  const plotH = H - PAD.top - PAD.bottom;
  const series = [
    { values: p.running.mean, color: '#7f8c8d', dash: '' },
    { values: p.live.mean, color: '#c0392b', dash: '' },
    { values: p.running.std, color: '#7f8c8d', dash: '4 3' },
    { values: p.live.std, color: '#e67e22', dash: '4 3' },
  ];
  const all = series.flatMap((s) => s.values);
  const lo = Math.min(0, ...all);
  let hi = Math.max(...all);
  if (!(hi > lo)) hi = lo + 1;
  const n = Math.max(1, p.channels - 1);
  const x = (i: number) => PAD.left + (i / n) * plotW;
  const y = (v: number) => PAD.top + plotH - ((v - lo) / (hi - lo)) * plotH;
  const lines = series
    .map(
      (s) =>
        `<polyline fill="none" stroke="${s.color}" stroke-width="1.5"${s.dash ? ` stroke-dasharray="${s.dash}"` : ''} points="${s.values.map((v, i) => `${x(i).toFixed(1)},${y(v).toFixed(1)}`).join(' ')}"/>`,
    )
    .join('');
  const zero = `<line x1="${PAD.left}" y1="${y(0).toFixed(1)}" x2="${PAD.left + plotW}" y2="${y(0).toFixed(1)}" stroke="#ccc"/>`;
  const legend = `<text x="${PAD.left + 4}" y="${PAD.top + 12}" font-size="10" fill="#555">grey: running · red: live mean · orange dashed: live std</text>`;
  return frame(
    `BatchNorm ${p.path}: running vs live per channel`,
    zero + lines + legend,
    0,
    p.channels - 1,
    lo,
    hi,
  );
}

/** The drift table as an SVG: per layer shift, log std ratio and score, bars against the threshold. */
export function driftTableSvg(report: ModelReport): string {
  const rowH = 22;
  const height = 60 + rowH * report.drift.length;
  const maxScore = Math.max(report.threshold * 2, ...report.drift.map((d) => d.score));
  const barX = 330;
  const barW = 220;
  const rows = report.drift
    .map((d, i) => {
      const y = 50 + i * rowH;
      const w = (d.score / maxScore) * barW;
      const color = d.score > report.threshold ? '#c0392b' : '#27ae60';
      return `<text x="10" y="${y}" font-size="12">${escapeMarkup(d.path)}</text><text x="90" y="${y}" font-size="12">${d.mean_shift.toFixed(3)}</text><text x="170" y="${y}" font-size="12">${d.log_std_ratio.toFixed(3)}</text><text x="260" y="${y}" font-size="12">${d.score.toFixed(3)}</text><rect x="${barX}" y="${y - 11}" width="${w.toFixed(1)}" height="13" fill="${color}"/>`;
    })
    .join('');
  const tx = barX + (report.threshold / maxScore) * barW;
  const threshold = `<line x1="${tx.toFixed(1)}" y1="30" x2="${tx.toFixed(1)}" y2="${height - 4}" stroke="#555" stroke-dasharray="4 3"/><text x="${tx.toFixed(1)}" y="26" font-size="10" text-anchor="middle">threshold ${report.threshold}</text>`;
  const head = `<text x="10" y="30" font-size="12" font-weight="bold">layer</text><text x="90" y="30" font-size="12" font-weight="bold">shift</text><text x="170" y="30" font-size="12" font-weight="bold">log std</text><text x="260" y="30" font-size="12" font-weight="bold">score</text>`;
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${barX + barW + 30}" height="${height}" font-family="sans-serif"><title>Drift per BatchNorm layer</title>${head}${rows}${threshold}</svg>\n`;
}

/** Safe file name for a layer path (`3.body.1` → `3-body-1`). */
export const layerFile = (path: string): string => path.replace(/[^A-Za-z0-9_-]/g, '-');

/** A layer's three pictures: `layer-<layerFile>-<picture>.svg`. */
export const LAYER_PICTURES = ['before', 'after', 'channels'] as const;
export const layerPictureFile = (path: string, picture: (typeof LAYER_PICTURES)[number]): string =>
  `layer-${layerFile(path)}-${picture}.svg`;

/**
 * Every name a report writes (index.html, drift.svg, the layers' pictures): an earlier report's
 * files in the same --out directory that the new one does not write (another model's layers)
 * are removed, and nothing else there is touched.
 */
/** How every report's index.html title starts: how `report` knows an earlier report's directory. */
export const REPORT_TITLE_PREFIX = 'normserve report: ';

export const REPORT_FILE_PATTERN = new RegExp(
  `^(?:index\\.html|drift\\.svg|layer-[A-Za-z0-9_-]+-(?:${LAYER_PICTURES.join('|')})\\.svg)$`,
);

/** The page's verdict: the server's rule, which decides nothing on fewer than DRIFT_MIN_ROWS rows. */
function verdict(report: ModelReport): string {
  if (report.recommended) return 'recalibration recommended';
  if (report.tooFewRows)
    return `too few rows to decide (${report.rows}, fewer than DRIFT_MIN_ROWS)`;
  return 'no recalibration needed';
}

/** One self-contained HTML page: the SVGs inline, no external reference. */
export function reportHtml(report: ModelReport, svgs: Map<string, string>, data: string): string {
  const title = `${REPORT_TITLE_PREFIX}${report.model} version ${report.version}`;
  const inline = (file: string) => svgs.get(file)!.replace(/^<svg /, '<svg role="img" ');
  const layers = report.pictures
    .map((p) => {
      return `<section><h3>BatchNorm ${escapeMarkup(p.path)} (${p.channels} channels; ${(p.below_zero * 100).toFixed(1)} % of its outputs below the ReLU's 0)</h3><div class="row">${LAYER_PICTURES.map((picture) => inline(layerPictureFile(p.path, picture))).join('')}</div></section>`;
    })
    .join('\n');
  const table = report.drift
    .map(
      (d) =>
        `<tr><td>${escapeMarkup(d.path)}</td><td>${d.channels}</td><td>${d.count}</td><td>${d.mean_shift.toFixed(4)}</td><td>${d.log_std_ratio.toFixed(4)}</td><td>${d.score.toFixed(4)}</td></tr>`,
    )
    .join('');
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${escapeMarkup(title)}</title>
<style>body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#1d2330}table{border-collapse:collapse}td,th{border-bottom:1px solid #d8dce6;padding:.2em .8em;text-align:right}.row{display:flex;flex-wrap:wrap;gap:1em}.verdict{font-weight:bold;color:${report.recommended ? '#c0392b' : report.tooFewRows ? '#7f8c8d' : '#27ae60'}}</style>
</head><body>
<h1>${escapeMarkup(title)}</h1>
<p>Data: ${escapeMarkup(data)} — ${report.rows} rows. Model drift score <strong>${report.score.toFixed(4)}</strong> (threshold ${report.threshold}, at least ${report.minRows} rows): <span class="verdict">${verdict(report)}</span>.</p>
<h2>Drift per BatchNorm layer</h2>
<table><thead><tr><th>layer</th><th>channels</th><th>values per channel</th><th>mean shift</th><th>log std ratio</th><th>score</th></tr></thead><tbody>${table}</tbody></table>
${inline('drift.svg')}
<h2>Inputs before and after each BatchNorm</h2>
<p>Histograms of the first ${report.pictureRows} rows, all channels pooled; after = γ·(x − running_mean)/√(running_var + ε) + β, the dashed line is where the following ReLU cuts.</p>
${layers}
</body></html>
`;
}
