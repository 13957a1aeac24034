// The value types a config key can have. Each type knows three things: how to check a value that
// already has the right JavaScript type (a zod schema), how to read one from the text of a
// properties file or a command-line flag, and how to describe itself in an error and in the docs.
// Keeping the three together means the error "expected an integer 0..65535" and the docs column
// "integer 0..65535" can never drift from what the schema actually accepts.

import { z } from 'zod';

/** One config value type: its schema, how to read it from text, and how it is described. */
export interface ValueType<T> {
  /** Checks a value that already has the right JavaScript type. */
  readonly schema: z.ZodType<T>;
  /** Turns text from a file or the command line into a candidate value; text it cannot read comes back unchanged so the schema rejects it. */
  readonly fromText: (text: string) => unknown;
  /** What an error says was expected, e.g. `an integer 0..65535`. */
  readonly expected: string;
  /** The type as the docs table shows it, e.g. `integer 0..65535`. */
  readonly docLabel: string;
}

const INTEGER_TEXT = /^[+-]?\d+$/;

/** An integer in `min..max` (inclusive), optionally a multiple of `multipleOf`; text is read like Java's `Integer.parseInt` after trimming. */
export function integerType(min: number, max: number, multipleOf?: number): ValueType<number> {
  if (!Number.isSafeInteger(min) || !Number.isSafeInteger(max) || min > max) {
    throw new RangeError(`integerType: bad range ${min}..${max}`);
  }
  let schema = z.number().int().min(min).max(max);
  let docLabel = `integer ${min}..${max}`;
  if (multipleOf !== undefined) {
    schema = schema.multipleOf(multipleOf);
    docLabel = `${docLabel}, a multiple of ${multipleOf}`;
  }
  return {
    schema,
    fromText: (text) => {
      const trimmed = text.trim();
      return INTEGER_TEXT.test(trimmed) ? Number(trimmed) : text;
    },
    expected: `an ${docLabel}`,
    docLabel,
  };
}

/** A boolean; text must be `true` or `false` in any case (Java's `Boolean.parseBoolean` would silently read anything else as false). */
export function booleanType(): ValueType<boolean> {
  return {
    schema: z.boolean(),
    fromText: (text) => {
      const lower = text.trim().toLowerCase();
      if (lower === 'true') return true;
      if (lower === 'false') return false;
      return text;
    },
    expected: 'true or false',
    docLabel: 'boolean',
  };
}

/** One of a fixed set of names; matched exactly (as Java's `Enum.valueOf`) unless `caseInsensitive`, in which case the canonical spelling is stored. */
export function enumType<const V extends readonly [string, ...string[]]>(
  values: V,
  options: { readonly caseInsensitive: boolean },
): ValueType<V[number]> {
  const schema = z.enum(values) as unknown as z.ZodType<V[number]>;
  return {
    schema,
    fromText: (text) => {
      const trimmed = text.trim();
      if (!options.caseInsensitive) return trimmed;
      const match = values.find((v) => v.toLowerCase() === trimmed.toLowerCase());
      return match ?? trimmed;
    },
    expected: `one of ${values.join(', ')}${options.caseInsensitive ? ' (any case)' : ''}`,
    docLabel: `one of ${values.join(', ')}`,
  };
}

/** A string, trimmed like RocketMQ trims string properties; `accepts` narrows which strings are valid. */
export function stringType(options: {
  readonly docLabel: string;
  readonly expected: string;
  readonly accepts?: (value: string) => boolean;
}): ValueType<string> {
  const accepts = options.accepts;
  const schema = accepts === undefined ? z.string() : z.string().refine((s) => accepts(s));
  return {
    schema,
    fromText: (text) => text.trim(),
    expected: options.expected,
    docLabel: options.docLabel,
  };
}
