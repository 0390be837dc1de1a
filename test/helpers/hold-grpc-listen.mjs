/**
 * Holds a server's gRPC listen: preload it with `NODE_OPTIONS=--import <this file>` and name a
 * directory in NORMSERVE_TEST_HOLD_DIR. grpc-js listens with node:http2's createServer (Fastify
 * with node:http); when an HTTP/2 server is about to listen, this writes `held-grpc-<pid>` there
 * and listens once a file `go` appears. A test can so look at the server between its HTTP listen
 * and its gRPC listen, whatever the machine's speed.
 */
import { existsSync, writeFileSync } from 'node:fs';
import http2 from 'node:http2';
import { join } from 'node:path';

const directory = process.env.NORMSERVE_TEST_HOLD_DIR;
if (directory !== undefined) {
  const createServer = http2.createServer;
  http2.createServer = (...args) => {
    const server = createServer(...args);
    const listen = server.listen.bind(server);
    server.listen = (...listenArgs) => {
      writeFileSync(join(directory, `held-grpc-${process.pid}`), '');
      const go = () => {
        if (existsSync(join(directory, 'go'))) listen(...listenArgs);
        else setTimeout(go, 10);
      };
      go();
      return server;
    };
    return server;
  };
}
