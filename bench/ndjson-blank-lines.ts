/**
 * The NDJSON row reader on blank lines: `npx tsx bench/ndjson-blank-lines.ts [MB]` reads MB
 * (50 by default) of empty lines, of " \n" lines and of "\r\n" lines through ndjsonRowChunks (the
 * :recalibrate upload's and the recalibrate CLI's reader) and prints the seconds each took. A gzip
 * upload of line ends decodes a thousandfold (305 KB to 300 MB), so what a blank line costs is what
 * such an upload costs (bench/README.md, "NDJSON blank lines").
 */
import { ndjsonRowChunks } from '../src/service/index.js';

const megabytes = Number(process.argv[2] ?? 50);
const PART_CHARS = 65_536;

/** `megabytes` of `line` repeated, in parts of PART_CHARS as a request body arrives. */
async function* text(line: string): AsyncGenerator<string> {
  const part = line.repeat(Math.floor(PART_CHARS / line.length));
  for (let sent = 0; sent < megabytes * 2 ** 20; sent += part.length) yield part;
}

for (const [name, line] of [
  ['"\\n"', '\n'],
  ['" \\n"', ' \n'],
  ['"\\r\\n"', '\r\n'],
] as const) {
  const started = performance.now();
  let rows = 0;
  for await (const chunk of ndjsonRowChunks(text(line), 64, {
    source: '',
    chunkRows: 4096,
    maxLineChars: 2 ** 20,
  }))
    rows += chunk.length / 64;
  const seconds = (performance.now() - started) / 1000;
  console.log(`${megabytes} MB of ${name} lines: ${seconds.toFixed(2)} s, ${rows} rows`);
}
