/** What a test job printed: one JSON line per check, `{"check": name, ...fields}`, by name. */
export function checkLines(stdout: string): Map<string, Record<string, unknown>> {
  const out = new Map<string, Record<string, unknown>>();
  for (const m of stdout.matchAll(/\{"check".*\}$/gm)) {
    const rec = JSON.parse(m[0]) as Record<string, unknown>;
    out.set(String(rec.check), rec);
  }
  return out;
}
