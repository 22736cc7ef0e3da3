import fc from 'fast-check';

/** Values the canonical codec accepts, with the edges that break codecs: every integer width, floats, unicode, bytes, deep nesting. */
export const intArb = fc.oneof(
  fc.constantFrom(0, -0, 1, -1, 31, 127, 128, 255, 256, -32, -33, -128, -129, 0xffff, 0x10000, -0x8000, -0x8001, 0xffffffff, 0x100000000, -0x80000000, -0x80000001, Number.MAX_SAFE_INTEGER, Number.MIN_SAFE_INTEGER),
  fc.maxSafeInteger(),
  fc.integer(),
);
export const floatArb = fc.oneof(fc.double({ noNaN: true }), fc.constantFrom(0.1, -0.5, 1e300, -1e-300, Number.EPSILON, Number.MIN_VALUE, Infinity, -Infinity, 2 ** 53 + 0.5));
export const stringArb = fc.oneof(fc.string(), fc.string({ unit: 'grapheme' }), fc.string({ unit: 'binary', maxLength: 40 }), fc.constantFrom('', 'é', '😀', 'a'.repeat(31), 'a'.repeat(32), 'ü'.repeat(200), 'x'.repeat(70000)));
const keyArb = fc.string({ unit: 'grapheme', maxLength: 6 }).filter((k) => k !== '__proto__');

export const canonicalArb: fc.Arbitrary<unknown> = fc.letrec<{ value: unknown }>((tie) => ({
  value: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    fc.constant(null),
    fc.boolean(),
    intArb,
    floatArb,
    stringArb,
    fc.uint8Array({ maxLength: 300 }),
    fc.array(tie('value'), { maxLength: 5 }),
    fc.dictionary(keyArb, tie('value'), { maxKeys: 5, noNullPrototype: false }),
  ),
})).value;
