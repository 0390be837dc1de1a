/**
 * Text for HTML or SVG (XML): the five characters markup gives a meaning, `& < > " '`, as numeric
 * character references, valid in both, in text and in quoted attribute values alike.
 */
export const escapeMarkup = (s: string): string =>
  s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
