/**
 * Writes openapi/openapi.json from the app's routes (`npm run openapi`). A test fails when the
 * committed file differs from what this would write.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { openApiDocument } from '../src/http/openapi-document.js';

const version = (JSON.parse(readFileSync('package.json', 'utf8')) as { version: string }).version;
const document = await openApiDocument(version);
mkdirSync('openapi', { recursive: true });
writeFileSync('openapi/openapi.json', `${JSON.stringify(document, null, 2)}\n`);
process.stdout.write('wrote openapi/openapi.json\n');
