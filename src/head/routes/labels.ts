import { z } from 'zod';
import type { LabelFilter } from '../db/index.js';

/** A label filter as a query parameter: `key` or `key=value` (metadata keys and values). */
export const labelSchema = z
  .string()
  .min(1)
  .max(1000)
  .transform((s): LabelFilter => {
    const eq = s.indexOf('=');
    return eq < 0 ? { key: s } : { key: s.slice(0, eq), value: s.slice(eq + 1) };
  })
  .refine((l) => l.key.length > 0, 'a label filter is "key" or "key=value"');
