/**
 * How deep a parsed JSON value nests. JSON.parse takes any depth, but what handles the value
 * after it — JSON.stringify, schema checks, copies — recurses, and a body of a few hundred KiB of
 * brackets overflows their stack. Measured without recursion, stopping past `limit`.
 */

/** Deeper than any request of the API needs (Ray's runtime_env config included). */
export const MAX_JSON_DEPTH = 100;

/** An array or a plain object, as JSON.parse makes them (not a Buffer or a stream). */
function isJsonContainer(v: unknown): v is unknown[] | Record<string, unknown> {
  if (v === null || typeof v !== 'object') return false;
  if (Array.isArray(v)) return true;
  const proto = Object.getPrototypeOf(v) as unknown;
  return proto === Object.prototype || proto === null;
}

/** Whether `value` (as JSON.parse makes it) nests objects and arrays more than `limit` levels deep. */
export function nestsDeeperThan(value: unknown, limit: number): boolean {
  const stack: { v: unknown[] | Record<string, unknown>; depth: number }[] = isJsonContainer(value) ? [{ v: value, depth: 1 }] : [];
  for (let item = stack.pop(); item !== undefined; item = stack.pop()) {
    const { v, depth } = item;
    if (depth > limit) return true;
    for (const c of Array.isArray(v) ? v : Object.values(v)) if (isJsonContainer(c)) stack.push({ v: c, depth: depth + 1 });
  }
  return false;
}
