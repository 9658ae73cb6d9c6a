/**
 * Checks a message from the agent against its schema in the contract (the part of JSON Schema the
 * contract uses: type, const, enum, pattern, lengths, bounds, properties, required, items, anyOf
 * and oneOf), so a message this library does not understand is refused where it enters, clearly.
 */
interface Schema {
  type?: string;
  const?: unknown;
  enum?: unknown[];
  pattern?: string;
  maxLength?: number;
  minLength?: number;
  minimum?: number;
  maximum?: number;
  properties?: Record<string, Schema>;
  required?: string[];
  items?: Schema;
  anyOf?: Schema[];
  oneOf?: Schema[];
}

const patterns = new Map<string, RegExp>();

/** Where `value` does not match `schema` first, or null when it matches. */
export function mismatch(schema: unknown, value: unknown, where = 'message'): string | null {
  const s = schema as Schema;
  const alternatives = s.oneOf ?? s.anyOf;
  if (alternatives) {
    const errors: string[] = [];
    for (const alt of alternatives) {
      const e = mismatch(alt, value, where);
      if (e === null) return null;
      errors.push(e);
    }
    return errors.sort((a, b) => a.length - b.length)[0] ?? `${where} matches no alternative`;
  }
  switch (s.type) {
    case 'object': {
      if (typeof value !== 'object' || value === null || Array.isArray(value)) return `${where} is not an object`;
      const o = value as Record<string, unknown>;
      for (const k of s.required ?? []) if (!(k in o)) return `${where} lacks ${k}`;
      for (const [k, v] of Object.entries(o)) {
        const p = s.properties?.[k];
        const e = p ? mismatch(p, v, `${where}.${k}`) : null;
        if (e) return e;
      }
      break;
    }
    case 'array': {
      if (!Array.isArray(value)) return `${where} is not a list`;
      if (s.items) for (let i = 0; i < value.length; i++) {
        const e = mismatch(s.items, value[i], `${where}[${i}]`);
        if (e) return e;
      }
      break;
    }
    case 'string': {
      if (typeof value !== 'string') return `${where} is not a string`;
      if (value.length > (s.maxLength ?? Infinity) || value.length < (s.minLength ?? 0)) return `${where} has the wrong length`;
      if (s.pattern !== undefined) {
        let rx = patterns.get(s.pattern);
        if (!rx) patterns.set(s.pattern, (rx = new RegExp(s.pattern)));
        if (!rx.test(value)) return `${where} does not match ${s.pattern}`;
      }
      break;
    }
    case 'integer':
    case 'number':
      if (typeof value !== 'number' || (s.type === 'integer' && !Number.isInteger(value))) return `${where} is not ${s.type === 'integer' ? 'an integer' : 'a number'}`;
      if (value < (s.minimum ?? -Infinity) || value > (s.maximum ?? Infinity)) return `${where} is out of range`;
      break;
    case 'boolean':
      if (typeof value !== 'boolean') return `${where} is not a boolean`;
      break;
    case 'null':
      if (value !== null) return `${where} is not null`;
      break;
  }
  if ('const' in s && value !== s.const) return `${where} is not ${JSON.stringify(s.const)}`;
  if (s.enum && !s.enum.includes(value)) return `${where} is not one of ${s.enum.join(', ')}`;
  return null;
}
