/** grpc-js's own log lines in the server's log (src/grpc/grpc-js-log.ts). */
import {
  experimental,
  logVerbosity as LogVerbosity,
  setLogger,
  setLogVerbosity,
} from '@grpc/grpc-js';
import { afterEach, describe, expect, it } from 'vitest';
import { routeGrpcJsLog } from '../../src/grpc/grpc-js-log.js';

afterEach(() => {
  setLogger(console);
  setLogVerbosity(LogVerbosity.ERROR);
});

describe('routeGrpcJsLog', () => {
  it('logs grpc-js ERROR lines at warn (seen at the default level) and its INFO/DEBUG lines at debug', () => {
    const lines: { level: string; fields: object; msg: string | undefined }[] = [];
    routeGrpcJsLog({
      warn: (fields, msg) => lines.push({ level: 'warn', fields, msg }),
      debug: (fields, msg) => lines.push({ level: 'debug', fields, msg }),
    });
    setLogVerbosity(LogVerbosity.DEBUG);
    experimental.log(LogVerbosity.ERROR, 'No address added');
    experimental.log(LogVerbosity.INFO, 'an info line');
    experimental.log(LogVerbosity.DEBUG, 'a debug line');
    expect(lines).toEqual([
      { level: 'warn', fields: { grpcJs: 'error' }, msg: 'No address added' },
      { level: 'debug', fields: { grpcJs: 'info' }, msg: 'an info line' },
      { level: 'debug', fields: { grpcJs: 'debug' }, msg: 'a debug line' },
    ]);
  });
});
