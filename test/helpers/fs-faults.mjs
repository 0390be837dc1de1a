/**
 * File-system faults for tests, injected into `node:fs/promises` of this process: a call of a
 * named operation on a path containing `path` fails with the errno `code` (EROFS, ENOSPC, EIO…),
 * as the kernel would fail it, whoever runs the test (root included, where chmod stops nothing).
 *
 * In a test: `injectFsFaults([{ op: 'fsync', path: 'digits', code: 'EIO' }])`, then
 * `clearFsFaults()`. For a child process (a server, a CLI): preload this file with
 * `NODE_OPTIONS=--import <this file>` and give the faults as JSON in NORMSERVE_TEST_FS_FAULTS.
 *
 * Operations: the functions of fs/promises by name (`rm`, `rename`, `mkdir`, `open`, `readdir`…),
 * and a FileHandle's `fsync` (handle.sync), `write` (handle.writeFile and handle.write) and `read`
 * (handle.read), matched on the path the handle was opened with: containing `path`, ending with `suffix`; `writing` matches only an
 * open that creates or writes (READ_ONLY below is a read-only file system). `skip` lets that many matching calls succeed first; `times` (default
 * every one) bounds how many fail. Node's own error text: `EIO: i/o error, fsync`.
 * `delayMs` makes a matching call wait that long first (a slow disk, an NFS server that stalls):
 * without `code` the call then goes through, with one it then fails.
 */
import fs from 'node:fs';
import { syncBuiltinESMExports } from 'node:module';
import os from 'node:os';

const fsp = fs.promises;
/** @type {import('./fs-faults.d.mts').FsFault[]} */
let faults = [];
const originals = new Map();
/** The path each FileHandle was opened with (its write and fsync are matched on it). */
const handlePaths = new WeakMap();
let handlePrototypePatched = false;

const ERRNO_WORDS = {
  EROFS: 'read-only file system',
  ENOSPC: 'no space left on device',
  EDQUOT: 'disk quota exceeded',
  EIO: 'i/o error',
  EACCES: 'permission denied',
  EPERM: 'operation not permitted',
};

function failure(path, code, syscall) {
  const words = ERRNO_WORDS[code] ?? 'injected failure';
  const withPath =
    syscall === 'fsync' || syscall === 'write' || syscall === 'read' ? '' : ` '${path}'`;
  const error = new Error(`${code}: ${words}, ${syscall}${withPath}`);
  return Object.assign(error, {
    code,
    errno: -(os.constants.errno[code] ?? 5),
    syscall,
    ...(withPath ? { path } : {}),
  });
}

/** The fault this call trips, if any (counting skips and times). */
function trips(op, path, flags) {
  for (const fault of faults) {
    if (fault.op !== op) continue;
    if (fault.path !== undefined && !String(path).includes(fault.path)) continue;
    if (fault.suffix !== undefined && !String(path).endsWith(fault.suffix)) continue;
    if (fault.writing && !opensForWriting(flags)) continue;
    if ((fault.skip ?? 0) > 0) {
      fault.skip -= 1;
      continue;
    }
    if (fault.times !== undefined) {
      if (fault.times <= 0) continue;
      fault.times -= 1;
    }
    fault.hits = (fault.hits ?? 0) + 1;
    return fault;
  }
  return undefined;
}

/** Whether open's `flags` create or write (what a read-only file system refuses). */
function opensForWriting(flags) {
  if (flags === undefined) return false;
  if (typeof flags === 'string') return /[wa+]/.test(flags);
  const { O_WRONLY, O_RDWR, O_CREAT } = fs.constants;
  return (flags & (O_WRONLY | O_RDWR | O_CREAT)) !== 0;
}

function patchHandlePrototype(handle) {
  if (handlePrototypePatched) return;
  handlePrototypePatched = true;
  const proto = Object.getPrototypeOf(handle);
  const sync = proto.sync;
  const writeFile = proto.writeFile;
  const write = proto.write;
  const read = proto.read;
  proto.sync = async function patchedSync(...args) {
    await delayed(trips('fsync', handlePaths.get(this) ?? ''), handlePaths.get(this), 'fsync');
    return sync.apply(this, args);
  };
  proto.writeFile = async function patchedWriteFile(...args) {
    await delayed(trips('write', handlePaths.get(this) ?? ''), handlePaths.get(this), 'write');
    return writeFile.apply(this, args);
  };
  // handle.writeFile and handle.readFile do not go through these two (Node writes and reads the
  // descriptor itself), so a fault on `write` trips once per call whichever method made it.
  proto.write = async function patchedWrite(...args) {
    await delayed(trips('write', handlePaths.get(this) ?? ''), handlePaths.get(this), 'write');
    return write.apply(this, args);
  };
  proto.read = async function patchedRead(...args) {
    await delayed(trips('read', handlePaths.get(this) ?? ''), handlePaths.get(this), 'read');
    return read.apply(this, args);
  };
}

/** What a tripped `fault` does before the call: waits its `delayMs`, then fails with its `code`. */
async function delayed(fault, path, syscall) {
  if (!fault) return;
  if (fault.delayMs) await new Promise((resolve) => setTimeout(resolve, fault.delayMs));
  if (fault.code) throw failure(path, fault.code, syscall);
}

function install() {
  if (originals.size > 0) return;
  for (const name of ['rm', 'rename', 'mkdir', 'open', 'readdir', 'stat', 'lstat', 'link']) {
    const original = fsp[name];
    originals.set(name, original);
    fsp[name] = async function patched(path, ...rest) {
      await delayed(trips(name, path, rest[0]), path, name === 'rm' ? 'rmdir' : name);
      const result = await original.call(this, path, ...rest);
      if (name === 'open') {
        patchHandlePrototype(result);
        handlePaths.set(result, String(path));
      }
      return result;
    };
  }
  syncBuiltinESMExports();
}

/** Makes the calls matching `list` fail from now on (replacing faults injected before). */
export function injectFsFaults(list) {
  install();
  faults = list.map((f) => ({ ...f }));
}

/** No more faults: every call succeeds again (the wrappers stay, and pass through). */
export function clearFsFaults() {
  faults = [];
}

/** How many calls each fault failed so far (a test checks that its fault was reached). */
export function faultHits() {
  return faults.map((f) => f.hits ?? 0);
}

/** A read-only file system: every call that would change it fails with EROFS. */
export const READ_ONLY = [
  { op: 'open', writing: true, code: 'EROFS' },
  ...['rename', 'mkdir', 'rm', 'link'].map((op) => ({ op, code: 'EROFS' })),
];

/** This file's path, for `NODE_OPTIONS=--import <path>`. */
export const FS_FAULTS_MODULE = new URL(import.meta.url).pathname;

const fromEnvironment = process.env.NORMSERVE_TEST_FS_FAULTS;
if (fromEnvironment) injectFsFaults(JSON.parse(fromEnvironment));
