import { z } from 'zod';

export { quote } from '../../errors/index.js';

// What one request may ask for: one table for the HTTP routes and gRPC (service/request-limits.ts).
export { LIMITS, noteSchema } from '../../service/index.js';

/**
 * An Open Inference Protocol `parameters` object: any values (read by nobody; the body limit
 * bounds it). A plain record, so the prediction routes' compiled fast check covers it.
 */
export const parametersSchema = z.record(z.string(), z.unknown());
