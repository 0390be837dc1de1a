/**
 * The decoded request messages' schemas where a handler reads one field before the whole message
 * is parsed (requestField: the model of a call's log line, a health service name).
 */
import { describe, expect, it } from 'vitest';
import { healthCheckRequestSchema, requestField } from '../../src/grpc/messages.js';

describe('requestField', () => {
  const name = requestField('name');

  it('reads the string field of a decoded request', () => {
    expect(name({ name: 'mnist', version: '' })).toBe('mnist');
    expect(name({ name: '' })).toBe('');
  });

  it("is '' when the request has no such string (never a cast's undefined or number)", () => {
    expect(name({})).toBe('');
    expect(name(null)).toBe('');
    expect(name(undefined)).toBe('');
    expect(name({ name: 7 })).toBe('');
    expect(name({ name: ['mnist'] })).toBe('');
  });
});

it('healthCheckRequestSchema: a service name, nothing else', () => {
  expect(healthCheckRequestSchema.parse({ service: 'mnist' })).toEqual({ service: 'mnist' });
  expect(healthCheckRequestSchema.safeParse({ service: 1 }).success).toBe(false);
  expect(healthCheckRequestSchema.safeParse({}).success).toBe(false);
});
