/**
 * Each folder README of src/ ends in a `## Files` section: one line per .ts file of the folder
 * (and of its subfolders without a README of their own, by their path from the README's folder),
 * ``- `name.ts` — what it holds``, alphabetical; a subfolder with its own README is named once,
 * ``- `wasm/` — see its README``. A file added, renamed or deleted without its line fails here.
 * `src/index.ts` has no folder README: README.md ("Library") names it.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';

/** Files of src/ outside every folder README: the package's entry, named by README.md. */
const ENTRY_FILES = ['src/index.ts'];

function files(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? files(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(dir, e.name)] : [],
  );
}

function folders(dir: string): string[] {
  return [
    dir,
    ...readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
      e.isDirectory() ? folders(join(dir, e.name)) : [],
    ),
  ];
}

const hasReadme = (dir: string) => existsSync(join(dir, 'README.md'));

/** The folder whose README lists `path`: its own, or the nearest ancestor's below src/. */
function listingFolder(path: string): string | undefined {
  for (let dir = dirname(path); dir !== 'src' && dir !== '.'; dir = dirname(dir))
    if (hasReadme(dir)) return dir;
  return undefined;
}

/** The names of a README's `## Files` list, in order; undefined when it has no such section. */
function listedNames(readme: string): string[] | undefined {
  const section = readFileSync(readme, 'utf8').split(/^## Files$/m)[1];
  if (section === undefined) return undefined;
  const body = section.split(/^#{1,2} /m)[0]!;
  return [...body.matchAll(/^- `([^`]+)`/gm)].map((m) => m[1]!);
}

const readmeFolders = folders('src').filter((dir) => dir !== 'src' && hasReadme(dir));
const sourceFiles = files('src');

describe('README `## Files` lists of src/', () => {
  it('every .ts file is named in the list of its folder’s README (or the nearest ancestor’s)', () => {
    const missing: string[] = [];
    for (const file of sourceFiles) {
      if (ENTRY_FILES.includes(file)) continue;
      const dir = listingFolder(file);
      const names = dir === undefined ? undefined : listedNames(join(dir, 'README.md'));
      if (dir === undefined || !names?.includes(relative(dir, file)))
        missing.push(`${file} (in ${dir ?? 'no folder'}/README.md)`);
    }
    expect(missing).toEqual([]);
  });

  it('every name a list gives is a file of that README, or a subfolder with its own README', () => {
    const stale: string[] = [];
    for (const dir of readmeFolders) {
      for (const name of listedNames(join(dir, 'README.md')) ?? []) {
        const path = join(dir, name);
        const ok = name.endsWith('/')
          ? hasReadme(path)
          : sourceFiles.includes(path) && listingFolder(path) === dir;
        if (!ok) stale.push(`${dir}/README.md: ${name}`);
      }
    }
    expect(stale).toEqual([]);
  });

  it('a subfolder with its own README is named once in the nearest ancestor README’s list', () => {
    const unnamed: string[] = [];
    for (const dir of readmeFolders) {
      const parent = listingFolder(dir);
      if (parent === undefined) continue;
      const names = listedNames(join(parent, 'README.md')) ?? [];
      if (names.filter((n) => n === `${relative(parent, dir)}/`).length !== 1)
        unnamed.push(`${dir}/ in ${parent}/README.md`);
    }
    expect(unnamed).toEqual([]);
  });

  it('each list is alphabetical, without repeats', () => {
    for (const dir of readmeFolders) {
      const names = listedNames(join(dir, 'README.md')) ?? [];
      expect(names, `${dir}/README.md`).toEqual([...new Set(names)].sort());
    }
  });

  it('README.md names the files of src/ outside every folder README', () => {
    const readme = readFileSync('README.md', 'utf8');
    expect(sourceFiles.filter((f) => listingFolder(f) === undefined).sort()).toEqual(ENTRY_FILES);
    for (const file of ENTRY_FILES) expect(readme, file).toContain(file);
  });
});
