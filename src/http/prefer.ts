/**
 * The preferences a `Prefer` header names (RFC 7240 §2): a comma-separated list of
 * `token [ "=" word ] *( ";" parameter )`, where a word may be a quoted string holding commas and
 * semicolons; names are case-insensitive. Node joins repeated `Prefer` headers with ", ", which
 * this reads as one list (§2: several headers are equivalent to one). A name is read only at the
 * start of a list element, so `x-respond-async` or a value `"respond-async"` names nothing here.
 */
export function preferenceNames(header: string | string[] | undefined): Set<string> {
  const names = new Set<string>();
  if (header === undefined) return names;
  const text = Array.isArray(header) ? header.join(', ') : header;
  let element = true; // at the start of a list element: the next token is a preference's name
  let name = '';
  for (let i = 0; i <= text.length; i++) {
    const c = text[i];
    if (c === '"') {
      // A quoted string (§2's `word`), with its backslash escapes, ends nothing it holds.
      for (i++; i < text.length && text[i] !== '"'; i++) if (text[i] === '\\') i++;
      continue;
    }
    if (c === undefined || c === ',') {
      if (name !== '') names.add(name.toLowerCase());
      element = true;
      name = '';
    } else if (element) {
      if (c === '=' || c === ';') element = false;
      else if (c !== ' ' && c !== '\t') name += c;
      else if (name !== '') element = false; // whitespace after the name ends it
    }
  }
  return names;
}
