/**
 * The host a temporary's name carries (atomic-write.ts, hostTagOf): letters and digits as they
 * are, any other name made distinct by a digest, always parseable back by temporaryWriter.
 */
import { describe, expect, it } from 'vitest';
import { hostTagOf, TEMP_PREFIX, temporaryWriter } from '../../src/repository/atomic-write.js';

/** Linux's HOST_NAME_MAX: the longest name hostname() returns. */
const HOST_NAME_MAX = 64;

describe('hostTagOf', () => {
  it('keeps a name of letters and digits as it is', () => {
    expect(hostTagOf('vm')).toBe('vm');
    expect(hostTagOf('Node7')).toBe('Node7');
  });

  it('tells apart names that differ only in their other characters', () => {
    // A plain replacement by '_' made the first three one host: each would have taken the
    // others' temporaries for its own dead process's and removed them.
    const names = ['node-1', 'node.1', 'node_1', 'node--1', 'node1'];
    expect(new Set(names.map(hostTagOf)).size).toBe(names.length);
  });

  it('gives a tag with no "-" that temporaryWriter reads back, short enough for a file name', () => {
    const names = [
      'ip-10-0-0-1.ec2.internal',
      '',
      'a'.repeat(HOST_NAME_MAX),
      `${'x'.repeat(HOST_NAME_MAX - 2)}-y`,
      // Longer than Linux allows (other systems): cut, then the digest.
      `${'x'.repeat(HOST_NAME_MAX + 10)}-y`,
      'hôte-ünïcode',
    ];
    for (const name of names) {
      const tag = hostTagOf(name);
      expect(tag).toMatch(/^[A-Za-z0-9_]+$/);
      expect(tag.length).toBeLessThanOrEqual(HOST_NAME_MAX + 9);
      expect(temporaryWriter(`${TEMP_PREFIX}${tag}-4242_1234_4026531836-0a1b2c3d4e5f`)).toEqual({
        host: tag,
        pid: 4242,
        startTicks: 1234,
        pidNamespace: 4026531836,
      });
    }
  });
});
