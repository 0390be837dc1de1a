import { inputFileParts } from '../training/index.js';

/**
 * The text of an input file (`--input`, `--data`), or one DATA_INVALID line saying why not
 * (`cannot read <what><path>: no such file`, a directory, a file over the size limit), a leading
 * byte order mark dropped: training's readInputText, the one reader.
 */
export { readInputText } from '../training/index.js';

/** readInputTextParts' text; `close` releases the file whether it was read or not. */
export interface InputText extends AsyncIterable<string> {
  /** The file's size in bytes when it was opened. */
  readonly size: number;
  close(): Promise<void>;
}

/**
 * readInputText's text in parts, as the file is read (training's inputFileParts), for a reader
 * that takes rows as they come and never holds the whole text; the file is opened, or refused in
 * readInputText's words, before this resolves. The same text: bytes that are no UTF-8 become
 * U+FFFD as Buffer's decoder makes them (TextDecoder is not fatal here), a character split
 * between parts is decoded whole, and a leading byte order mark is dropped (TextDecoder's
 * default).
 */
export async function readInputTextParts(path: string, what: string): Promise<InputText> {
  const parts = await inputFileParts(path, what);
  async function* text(): AsyncGenerator<string> {
    const decoder = new TextDecoder('utf-8');
    for await (const part of parts) yield decoder.decode(part, { stream: true });
    yield decoder.decode();
  }
  return { [Symbol.asyncIterator]: text, size: parts.size, close: () => parts.close() };
}
