/**
 * Temporary directories and files for tests that touch the file system. Every directory made here
 * is removed by removeTempDirs() (call it from afterAll).
 */
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { testTempRoot } from './temp-root.js';

const made: string[] = [];

/** A new empty directory under the OS temp directory. */
export function makeTempDir(label: string): string {
  const dir = mkdtempSync(join(testTempRoot(), `normserve-${label}-`));
  made.push(dir);
  return dir;
}

/** Writes a file (text or JSON value) into dir and returns its path. */
export function writeTempFile(dir: string, name: string, content: string | object): string {
  const path = join(dir, name);
  writeFileSync(path, typeof content === 'string' ? content : JSON.stringify(content, null, 2));
  return path;
}

/** Every entry below dir (files and directories, hidden ones too), relative, sorted. */
export function listTree(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const entry of readdirSync(d, { withFileTypes: true })) {
      const path = join(d, entry.name);
      out.push(relative(dir, path));
      if (entry.isDirectory()) walk(path);
    }
  };
  walk(dir);
  return out.sort();
}

export function removeTempDirs(): void {
  for (const dir of made.splice(0)) rmSync(dir, { recursive: true, force: true });
}
