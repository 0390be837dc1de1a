/**
 * isProcessAlive: a live process is alive, a pid that exists no more is not, and neither is a
 * zombie — a process that has exited but whose parent has not reaped it yet, which still answers
 * signal 0. Containers whose PID 1 reaps late left a killed server a zombie for a second or two,
 * and its job stayed "running", its lock held, meanwhile.
 */
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { afterEach, describe, expect, it } from 'vitest';
import { exitedUnreaped, isProcessAlive } from '../../src/repository/process-alive.js';

const children: { kill(): void }[] = [];
afterEach(() => {
  for (const child of children.splice(0)) child.kill();
});

describe.skipIf(!existsSync('/proc/self/stat'))('isProcessAlive', () => {
  it('this process and its parent are alive; a pid that is gone is not', () => {
    expect(isProcessAlive(process.pid)).toBe(true);
    expect(exitedUnreaped(process.pid)).toBe(false);
    // Above /proc/sys/kernel/pid_max: no process can have it.
    const pidMax = Number(readFileSync('/proc/sys/kernel/pid_max', 'utf8'));
    expect(isProcessAlive(pidMax + 1)).toBe(false);
  });

  it('a zombie is not alive, and its parent that never reaps it is', async () => {
    // The shell starts a child that waits for a line on the shell's stdin, then becomes `sleep`,
    // which never waits for children. The line is sent once the shell is `sleep`: the child
    // exits then and stays a zombie (a child that exited before the exec could be reaped by the
    // shell itself).
    const parent = spawn('sh', ['-c', 'exec 3<&0; (read line <&3) & echo $!; exec sleep 600'], {
      stdio: ['pipe', 'pipe', 'ignore'],
    });
    children.push(parent);
    const [line] = await new Promise<string[]>((resolve) =>
      createInterface({ input: parent.stdout! }).once('line', (l) => resolve([l])),
    );
    const zombie = Number(line);
    const comm = () => {
      try {
        return readFileSync(`/proc/${parent.pid}/comm`, 'utf8').trim();
      } catch {
        return '';
      }
    };
    // Polled, with generous bounds: first the exec, then the child's exit.
    for (let i = 0; i < 3000 && comm() !== 'sleep'; i++)
      await new Promise((resolve) => setTimeout(resolve, 10));
    expect(comm()).toBe('sleep');
    expect(isProcessAlive(zombie)).toBe(true);
    parent.stdin!.write('go\n');
    for (let i = 0; i < 3000 && !exitedUnreaped(zombie); i++)
      await new Promise((resolve) => setTimeout(resolve, 10));
    expect(exitedUnreaped(zombie)).toBe(true);
    // It still answers signal 0: the probe alone would call it alive.
    expect(() => process.kill(zombie, 0)).not.toThrow();
    expect(isProcessAlive(zombie)).toBe(false);
    expect(isProcessAlive(parent.pid!)).toBe(true);
  });
});
