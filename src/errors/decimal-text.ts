/**
 * A decimal number as a person writes it in text (a CSV cell, an environment variable): an
 * optional sign, digits with an optional fraction (or a fraction alone), an optional exponent.
 * Not what Number() also reads — hexadecimal, binary and octal (`0x10` is 16, `PORT=0x4839`
 * served on 18489), `Infinity`, blank text (0) — nor separators (`1_000`).
 */
export const DECIMAL_TEXT = /^[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?$/;
