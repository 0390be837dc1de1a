/**
 * `npm run report`: the drift table and the before/after-BatchNorm histograms of a model on a CSV,
 * as SVG files and one self-contained HTML page; night rows are recommended, clean rows are not.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { layerDrift } from '../../src/drift/index.js';
import { type DriftReport, openReportModel } from '../../src/service/index.js';
import { type LoggedApp, makeLoggedApp } from '../helpers/admin.js';
import { makeRepository } from '../helpers/app.js';
import { bundledVersionDir } from '../helpers/bundled-models.js';
import { digitsImage, digitsTestRows, nightShift } from '../helpers/digits.js';
import { nodeArgs, ROOT, spawnWithFsFaults } from '../helpers/entries.js';
import { FS_FAULTS_MODULE } from '../helpers/fs-faults.mjs';

/** The bundled digits version (not models/digits: `npm run train` may have added versions). */
const DIGITS = bundledVersionDir('digits');

const dir = mkdtempSync(join(tmpdir(), 'normserve-report-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
let t: LoggedApp | undefined;
afterEach(async () => {
  await t?.close();
  t = undefined;
});

const { x, y } = digitsTestRows();
const header = `${Array.from({ length: 64 }, (_, i) => `pixel_${i}`).join(',')},label`;
function writeCsv(name: string, rows: number[][]): string {
  const path = join(dir, name);
  writeFileSync(path, `${header}\n${rows.map((r, i) => `${r.join(',')},${y[i]}`).join('\n')}\n`);
  return path;
}

function report(data: string, out: string) {
  const result = spawnSync(
    process.execPath,
    [...nodeArgs('src/cli/report.ts'), '--model', DIGITS, '--data', data, '--out', out],
    { cwd: ROOT, encoding: 'utf8', timeout: 120_000 },
  );
  expect(result.stderr).toBe('');
  expect(result.status).toBe(0);
  return JSON.parse(result.stdout) as {
    score: number;
    recommended: boolean;
    threshold: number;
    layers: { path: string; score: number }[];
  };
}

describe('npm run report', () => {
  it('writes SVGs and one self-contained HTML page; night rows are recommended, clean ones not', () => {
    const nightOut = join(dir, 'night');
    const night = report(writeCsv('night.csv', nightShift(x)), nightOut);
    expect(night.recommended).toBe(true);
    expect(night.layers.map((l) => l.path)).toEqual(['1', '5']);
    expect(night.score).toBeGreaterThan(night.threshold);
    const clean = report(writeCsv('clean.csv', x), join(dir, 'clean'));
    expect(clean.recommended).toBe(false);
    expect(clean.score).toBeLessThan(clean.threshold);

    expect(readdirSync(nightOut).sort()).toEqual([
      'drift.svg',
      'index.html',
      'layer-1-after.svg',
      'layer-1-before.svg',
      'layer-1-channels.svg',
      'layer-5-after.svg',
      'layer-5-before.svg',
      'layer-5-channels.svg',
    ]);
    for (const f of readdirSync(nightOut).filter((n) => n.endsWith('.svg'))) {
      const svg = readFileSync(join(nightOut, f), 'utf8');
      expect(svg).toMatch(/^<svg xmlns="http:\/\/www\.w3\.org\/2000\/svg"/);
      expect(svg).toMatch(/<(rect|polyline) /);
    }
    const html = readFileSync(join(nightOut, 'index.html'), 'utf8');
    // Self-contained: every SVG inline, nothing loaded from anywhere.
    expect(html.match(/<svg /g)).toHaveLength(7);
    expect(html).not.toMatch(/\b(src|href)=/);
    expect(html.replaceAll('http://www.w3.org/2000/svg', '')).not.toMatch(/https?:\/\//);
    expect(html).toContain('recalibration recommended');
  });

  it('its two paths agree: tapped executor sums and the prefix plans’ values give one drift', async () => {
    const model = await openReportModel(DIGITS);
    // Clean rows: the drift table winsorizes at 16 running σ as live drift does, the pictures do
    // not, and no clean value lies that far out (bounded-influence.test.ts); 1.6 % of night
    // values on the first BatchNorm do.
    const rows = Float32Array.from(x.flat());
    const r = model.report(rows, x.length, { threshold: 0.5, minRows: 100 });
    for (const [i, d] of r.drift.entries()) {
      const p = r.pictures[i]!;
      expect(p.path).toBe(d.path);
      // The pictures' channel statistics (σ = √(variance + ε), ε = 1e-5 for every BatchNorm of
      // this model), as moments, through the same drift formula.
      const n = r.pictureRows;
      const fromPictures = layerDrift(
        {
          path: p.path,
          mean: p.running.mean,
          variance: p.running.std.map((s) => s * s - 1e-5),
          eps: 1e-5,
        },
        {
          count: n,
          mean: p.live.mean,
          m2: p.live.std.map((s) => (s * s - 1e-5) * (n - 1)),
        },
      );
      expect(Math.abs(fromPictures.score - d.score)).toBeLessThan(1e-4 * d.score + 1e-6);
    }
  });

  it.each([
    { name: 'digits' as const, instance: (r: number[]): unknown => r },
    { name: 'digits-cnn' as const, instance: (r: number[]): unknown => digitsImage(r) },
  ])(
    'scores rows as the server’s live drift does, absurd rows included ($name)',
    async ({ name, instance }) => {
      // The 360 clean rows and 3 rows of 64 × 1e4: live drift winsorizes each BatchNorm input at
      // running_mean ± 16 running σ, and so must the report, or its score (18.2 on digits before)
      // would not be the server's (0.68) that DRIFT_THRESHOLD judges.
      const rows = [...x, ...Array.from({ length: 3 }, () => new Array<number>(64).fill(1e4))];
      t = await makeLoggedApp({
        models: [name],
        env: { DRIFT_SAMPLE_FRACTION: '1' },
        level: 'warn',
      });
      for (let r = 0; r < rows.length; r += 50) {
        const res = await t.app.inject({
          method: 'POST',
          url: `/v1/models/${name}:predict`,
          payload: { instances: rows.slice(r, r + 50).map(instance) },
        });
        expect(res.statusCode).toBe(200);
      }
      const live = (
        await t.app.inject({ method: 'GET', url: `/v1/models/${name}/drift` })
      ).json() as DriftReport;
      expect(live.active!.rows).toBe(rows.length);
      const model = await openReportModel(bundledVersionDir(name));
      const rule = { threshold: live.threshold, minRows: live.min_rows };
      const offline = model.report(Float32Array.from(rows.flat()), rows.length, rule);
      // Float32 sums of one engine against another's: the executors' agreement, not bits.
      expect(Math.abs(offline.score - live.active!.score)).toBeLessThan(1e-4 * live.active!.score);
      expect(offline.recommended).toBe(live.active!.recommended);
      for (const [i, layer] of offline.drift.entries())
        expect(Math.abs(layer.score - live.active!.layers[i]!.score)).toBeLessThan(
          1e-4 * live.active!.layers[i]!.score + 1e-6,
        );
    },
  );
});

describe('npm run report: the environment', () => {
  const run = (env: Record<string, string>, out: string) =>
    spawnSync(
      process.execPath,
      [
        ...nodeArgs('src/cli/report.ts'),
        ...['--model', DIGITS, '--data', writeCsv('env.csv', x.slice(0, 40)), '--out', out],
      ],
      { cwd: ROOT, encoding: 'utf8', timeout: 120_000, env: { ...process.env, ...env } },
    );

  // It parsed the whole server configuration: PORT=abc or a short API_TOKEN stopped it.
  it('reads DRIFT_THRESHOLD and DRIFT_MIN_ROWS only: server-only variables do not stop it', () => {
    const result = run(
      {
        ...{ API_TOKEN: 'abc', PORT: 'abc', LOG_LEVEL: 'verbose', WORKERS: 'auto' },
        ...{ ENGINE: 'cuda', DRIFT_THRESHOLD: '0.001', DRIFT_MIN_ROWS: '41' },
      },
      join(dir, 'env'),
    );
    // A score above the threshold, but 40 rows are fewer than DRIFT_MIN_ROWS: no recommendation,
    // and the report says why rather than "no recalibration needed" (review60).
    expect(result.stderr).toBe(
      'report: 40 rows, fewer than DRIFT_MIN_ROWS (41): the drift is shown, but no recalibration is recommended on so few rows\n',
    );
    expect(result.status).toBe(0);
    const printed = JSON.parse(result.stdout) as {
      threshold: number;
      min_rows: number;
      score: number;
      recommended: boolean;
    };
    expect(printed.score).toBeGreaterThan(0.001);
    expect(printed.threshold).toBe(0.001);
    expect(printed.min_rows).toBe(41);
    expect(printed.recommended).toBe(false);
    const html = readFileSync(join(dir, 'env', 'index.html'), 'utf8');
    expect(html).toContain('too few rows to decide (40, fewer than DRIFT_MIN_ROWS)');
    expect(html).not.toContain('no recalibration needed');
    // With enough rows for the rule, no such line.
    const decided = run({ DRIFT_THRESHOLD: '0.001', DRIFT_MIN_ROWS: '40' }, join(dir, 'env-40'));
    expect(decided.stderr).toBe('');
    expect((JSON.parse(decided.stdout) as { recommended: boolean }).recommended).toBe(true);
  });

  it('refuses a bad value of a variable it reads, by the server’s rule', () => {
    const result = run({ DRIFT_MIN_ROWS: '1' }, join(dir, 'env-bad'));
    expect(result.stderr).toBe(
      'report: invalid configuration: DRIFT_MIN_ROWS: expected an integer ≥ 2, got 1\n',
    );
    expect(result.status).toBe(1);
  });

  it('names them in --help', () => {
    const help = spawnSync(process.execPath, [...nodeArgs('src/cli/report.ts'), '--help'], {
      cwd: ROOT,
      encoding: 'utf8',
    });
    expect(help.stdout).toContain('Environment: DRIFT_THRESHOLD and DRIFT_MIN_ROWS');
  });
});

describe('npm run report: an --out directory holding an earlier report', () => {
  const reportOf = (model: 'digits' | 'digits-cnn', out: string) => {
    const result = spawnSync(
      process.execPath,
      [
        ...nodeArgs('src/cli/report.ts'),
        ...['--model', bundledVersionDir(model), '--data', writeCsv('again.csv', x.slice(0, 40))],
        ...['--out', out],
      ],
      { cwd: ROOT, encoding: 'utf8', timeout: 120_000 },
    );
    expect(result.stderr).toMatch(/^report: 40 rows, fewer than DRIFT_MIN_ROWS \(100\).*\n$/);
    expect(result.status).toBe(0);
    return (JSON.parse(result.stdout) as { files: string[] }).files;
  };

  // The other model's layer-5-*.svg stayed beside the new index.html, which does not show them.
  it('removes the earlier report’s files this one does not write, and nothing else', () => {
    const out = join(dir, 'again');
    expect(reportOf('digits', out).map((f) => f.slice(out.length + 1))).toContain(
      'layer-5-before.svg',
    );
    writeFileSync(join(out, 'notes.txt'), 'mine');
    writeFileSync(join(out, 'layer-5-before.png'), 'mine');
    const files = reportOf('digits-cnn', out).map((f) => f.slice(out.length + 1));
    expect(files).not.toContain('layer-5-before.svg');
    expect(readdirSync(out).sort()).toEqual([...files, 'notes.txt', 'layer-5-before.png'].sort());
  });
});

describe('npm run report: an --out directory holding files of its names that no report wrote', () => {
  it('is refused, and nothing there is replaced or removed', () => {
    // review60: `--out site` replaced the site's index.html and removed its layer-9-before.svg.
    const out = mkdtempSync(join(dir, 'site-'));
    writeFileSync(join(out, 'index.html'), '<h1>mine</h1>');
    writeFileSync(join(out, 'layer-9-before.svg'), '<svg/>');
    const result = spawnSync(
      process.execPath,
      [
        ...nodeArgs('src/cli/report.ts'),
        ...['--model', DIGITS, '--data', writeCsv('site.csv', x.slice(0, 40)), '--out', out],
      ],
      { cwd: ROOT, encoding: 'utf8', timeout: 120_000 },
    );
    expect(result.stderr).toBe(
      `report: --out ${out}: holds index.html, layer-9-before.svg, and no earlier report (its index.html) is there; a report would replace or remove them: give a new or empty directory, or one holding an earlier report\n`,
    );
    expect(result.status).toBe(1);
    expect(readdirSync(out).sort()).toEqual(['index.html', 'layer-9-before.svg']);
    expect(readFileSync(join(out, 'index.html'), 'utf8')).toBe('<h1>mine</h1>');
  });
});

describe('npm run report: where it writes', () => {
  const runReport = (model: string, out: string, env: NodeJS.ProcessEnv = {}) =>
    spawnSync(
      process.execPath,
      [
        ...nodeArgs('src/cli/report.ts'),
        ...['--model', model, '--data', writeCsv('where.csv', x.slice(0, 40)), '--out', out],
      ],
      { cwd: ROOT, encoding: 'utf8', timeout: 120_000, env: { ...process.env, ...env } },
    );

  it('refuses an --out inside the model repository (a model, a version, a new directory there), writing nothing', () => {
    // h248: `--out models/digits` dropped the report's HTML and pictures into the model.
    const repository = makeRepository(['digits']);
    try {
      for (const out of ['digits', 'digits/1', 'reports']) {
        const result = runReport(join(repository, 'digits'), join(repository, out));
        const holder = join(repository, out.split('/')[0]!);
        // The out directory itself is named once, with the repository (h265).
        const where =
          holder === join(repository, out)
            ? `a directory of the model repository ${repository}`
            : `inside ${holder}, a directory of the model repository`;
        expect(result.stderr).toBe(
          `report: --out ${join(repository, out)}: ${where}, which the server reads as a model's; write the report elsewhere\n`,
        );
        expect(result.status).toBe(1);
      }
      expect(readdirSync(repository).sort()).toEqual(['digits']);
      expect(readdirSync(join(repository, 'digits')).sort()).toEqual(['1']);
    } finally {
      rmSync(repository, { recursive: true, force: true });
    }
  });

  it('writes every file or none: a full device mid-report leaves an earlier report as it was', () => {
    // h248: five of nine files were left behind, beside an earlier report's index.html.
    const out = join(dir, 'full');
    runReport(DIGITS, out);
    const before = new Map(readdirSync(out).map((f) => [f, readFileSync(join(out, f), 'utf8')]));
    // The last file staged: every picture was written under its temporary name first.
    const faults = [{ op: 'write', path: 'index.html', code: 'ENOSPC' }];
    const result = runReport(bundledVersionDir('digits-cnn'), out, {
      NODE_OPTIONS: `--import ${FS_FAULTS_MODULE}`,
      NORMSERVE_TEST_FS_FAULTS: JSON.stringify(faults),
    });
    expect(result.stderr).toMatch(
      /^report: cannot write \S+\/index\.html: no space left on the device\n$/,
    );
    expect(result.status).toBe(1);
    const after = new Map(readdirSync(out).map((f) => [f, readFileSync(join(out, f), 'utf8')]));
    expect(after).toEqual(before);
  });

  /** A report run whose file operations wait as `fault` says. */
  const reportHeldAt = (csv: string, out: string, fault: object) =>
    spawnWithFsFaults(
      'src/cli/report.ts',
      ['--model', DIGITS, '--data', writeCsv(csv, x.slice(0, 40)), '--out', out],
      [fault],
    );

  it('a signal while it writes leaves nothing of it: no temporary, no directory it made', async () => {
    // h250: the temporaries of an interrupted report stayed beside the files.
    const out = join(dir, 'signalled', 'report');
    // index.html's write waits: every picture is staged by then.
    const { child, ended } = reportHeldAt('signal.csv', out, {
      op: 'write',
      path: 'index.html',
      delayMs: 60_000,
    });
    const staged = () =>
      existsSync(out) ? readdirSync(out).filter((f) => f.includes('.tmp-')).length : 0;
    for (let i = 0; i < 1200 && staged() < 2; i++)
      await new Promise((resolve) => setTimeout(resolve, 50));
    expect(staged()).toBeGreaterThanOrEqual(2);
    child.kill('SIGINT');
    expect(await ended).toEqual([null, 'SIGINT']);
    expect(existsSync(join(dir, 'signalled'))).toBe(false);
  }, 120_000);

  it('a signal once the renames have begun finishes them: the report is whole', async () => {
    // h252: a signal between two renames left new pictures beside the old index.html.
    const out = join(dir, 'renaming');
    // The second rename waits: drift.svg is in place, the rest still staged.
    const { child, ended } = reportHeldAt('renaming.csv', out, {
      op: 'rename',
      path: 'layer-1-before.svg',
      delayMs: 60_000,
    });
    for (let i = 0; i < 1200 && !existsSync(join(out, 'drift.svg')); i++)
      await new Promise((resolve) => setTimeout(resolve, 50));
    expect(existsSync(join(out, 'drift.svg'))).toBe(true);
    child.kill('SIGINT');
    expect(await ended).toEqual([null, 'SIGINT']);
    const files = readdirSync(out).sort();
    expect(files.filter((f) => f.includes('.tmp-'))).toEqual([]);
    expect(files).toContain('index.html');
    expect(files).toContain('layer-1-before.svg');
  }, 120_000);
});
