import { type ClientRequest, request as httpRequest } from 'node:http';

/**
 * A POST over a real connection whose body the caller writes (and ends) when it likes: the
 * headers are sent at once, so the server starts reading an upload the test holds open.
 */
export function streamedUpload(
  port: number,
  path: string,
  headers: Record<string, string>,
): { req: ClientRequest; response: Promise<{ status: number; body: string }> } {
  const req = httpRequest({ host: '127.0.0.1', port, method: 'POST', path, headers });
  const response = new Promise<{ status: number; body: string }>((resolve, reject) => {
    req.on('response', (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => {
        body += d;
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
  });
  req.flushHeaders();
  return { req, response };
}
