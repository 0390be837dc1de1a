/**
 * Every relative link of the repository's Markdown pages leads somewhere: the file exists, and a
 * `#fragment` into a Markdown page names one of its headings, as GitHub makes heading anchors
 * (lower case; punctuation other than `-` and `_` dropped; spaces to `-`; a repeated heading gets
 * `-1`, `-2`, …). Sections move between README.md and docs/ (README.md's reference sections did):
 * a link left behind is caught here, not by a reader.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, normalize } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ROOT } from '../helpers/entries.js';

/** Fenced code blocks removed: their `#` lines are no headings, their `](x)` no links. */
const prose = (text: string) => text.replace(/^```[^\n]*\n[\s\S]*?^```[^\n]*$/gm, '');

/** GitHub's anchor of a heading's text. */
function headingAnchor(heading: string): string {
  return heading
    .replace(/\[([^\]]*)\]\([^)]*\)/g, '$1')
    .replace(/`/g, '')
    .trim()
    .toLowerCase()
    .replace(/[^\p{L}\p{N}_\- ]/gu, '')
    .replace(/ /g, '-');
}

/** Every anchor of a Markdown page. */
function anchorsOf(text: string): Set<string> {
  const anchors = new Set<string>();
  const seen = new Map<string, number>();
  for (const match of prose(text).matchAll(/^#{1,6} (.+)$/gm)) {
    const anchor = headingAnchor(match[1]!);
    const n = seen.get(anchor) ?? 0;
    seen.set(anchor, n + 1);
    anchors.add(n === 0 ? anchor : `${anchor}-${n}`);
  }
  return anchors;
}

const pages = execFileSync('git', ['ls-files', '*.md'], { cwd: ROOT, encoding: 'utf8' })
  .split('\n')
  .filter((page) => page !== '' && existsSync(join(ROOT, page)));

describe('links between the Markdown pages', () => {
  it('GitHub’s anchors', () => {
    expect(headingAnchor('Metrics, logs and traces')).toBe('metrics-logs-and-traces');
    expect(headingAnchor('Fourth round: the affine step and reused row blocks (h28)')).toBe(
      'fourth-round-the-affine-step-and-reused-row-blocks-h28',
    );
    expect(headingAnchor('`GET /metrics` and [gRPC](#grpc)')).toBe('get-metrics-and-grpc');
    expect([...anchorsOf('# A\n## B\n```\n# not a heading\n```\n## B\n')]).toEqual([
      'a',
      'b',
      'b-1',
    ]);
  });

  it.each(pages)(
    '%s: every relative link leads to a file, and its #anchor to a heading',
    (page) => {
      const text = readFileSync(join(ROOT, page), 'utf8');
      const broken: string[] = [];
      for (const [, link] of prose(text).matchAll(/\]\(([^)\s]+)\)/g)) {
        if (/^[a-z][a-z0-9+.-]*:/i.test(link!)) continue; // https:, mailto:
        const [path, anchor] = link!.split('#', 2) as [string, string | undefined];
        const target = path === '' ? page : normalize(join(dirname(page), decodeURI(path)));
        if (!existsSync(join(ROOT, target))) {
          broken.push(`${link}: no file ${target}`);
          continue;
        }
        if (anchor === undefined || !target.endsWith('.md')) continue;
        if (!anchorsOf(readFileSync(join(ROOT, target), 'utf8')).has(decodeURIComponent(anchor)))
          broken.push(`${link}: no heading in ${target} has the anchor #${anchor}`);
      }
      expect(broken).toEqual([]);
    },
  );
});
