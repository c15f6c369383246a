import { closest, distance } from 'fastest-levenshtein';
import type { z } from 'zod';
import { ConfigObjectSchema } from './schema.js';

/**
 * The known key closest to a mistyped one in the same table ("prot" -> "port"), or undefined
 * when none is close enough to be a likely typo.
 */
export function keySuggestion(tablePath: ReadonlyArray<PropertyKey>, key: string): string | undefined {
  const known = knownKeys(ConfigObjectSchema, tablePath);
  if (known.length === 0) return undefined;
  const best = closest(key, known);
  return distance(key, best) <= Math.max(2, Math.floor(key.length / 3)) ? best : undefined;
}

/** The keys of the table at `path`, found by walking the schema through its wrappers. */
function knownKeys(schema: z.core.$ZodType, path: ReadonlyArray<PropertyKey>): string[] {
  let node: z.core.$ZodType | undefined = schema;
  for (const part of path) {
    node = unwrap(node);
    const def: z.core.$ZodTypeDef | undefined = node?._zod.def;
    if (def?.type === 'array' && typeof part === 'number') node = (def as z.core.$ZodArrayDef).element;
    else if (def?.type === 'object' && typeof part === 'string')
      node = (def as z.core.$ZodObjectDef).shape[part];
    else return [];
  }
  const def = unwrap(node)?._zod.def;
  return def?.type === 'object' ? Object.keys((def as z.core.$ZodObjectDef).shape) : [];
}

/** Looks through optional, default, prefault and pipe (transform) wrappers. */
function unwrap(schema: z.core.$ZodType | undefined): z.core.$ZodType | undefined {
  let node = schema;
  for (let depth = 0; node && depth < 10; depth++) {
    const def = node._zod.def as { type: string; innerType?: z.core.$ZodType; in?: z.core.$ZodType };
    if (def.innerType) node = def.innerType;
    else if (def.type === 'pipe' && def.in) node = def.in;
    else return node;
  }
  return node;
}
