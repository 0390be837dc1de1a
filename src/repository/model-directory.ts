import { readdir, readFile, stat } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { CONFIG_FILE, type LoadedCheckpoint, WEIGHTS_FILE } from '../checkpoint/index.js';
import { NormserveError } from '../errors/index.js';
import { ACTIVE_FILE } from './active-record.js';
import { isBrokenCheckpoint } from './broken-checkpoint.js';
import { ModelRepository, VERSION_NAME_PATTERN } from './model-repository.js';
import { isMissing, MAX_JSON_FILE_BYTES } from './repository-files.js';

/**
 * A model named alone (`--model digits`) where the checkout's repository has it: the path it
 * likely meant (newcomer review of 2026-12-04). A path is what every program takes, so the name
 * alone was looked up in the current directory.
 */
async function bundledHint(path: string): Promise<string> {
  if (path.includes('/') || path.startsWith('.')) return '';
  const candidate = join(BUNDLED_REPOSITORY, path);
  const found = await stat(candidate).then(
    (s) => s.isDirectory(),
    () => false,
  );
  return found ? ` (did you mean ${candidate}? a model is named by its directory's path)` : '';
}

/** The repository of the bundled models, relative to the checkout (where npm run runs). */
const BUNDLED_REPOSITORY = 'models';

/** A path that does not exist is reported as such, not as a version missing its files. */
async function checkIsDirectory(path: string, clean: string): Promise<void> {
  let isDirectory: boolean;
  try {
    isDirectory = (await stat(clean)).isDirectory();
  } catch (e) {
    if (!isMissing(e)) throw e;
    const parent = dirname(clean);
    const versions = VERSION_NAME_PATTERN.test(basename(clean))
      ? await new ModelRepository(dirname(parent)).listVersions(basename(parent))
      : [];
    throw new NormserveError(
      'MODEL_NOT_FOUND',
      `${path}: no such directory${versions.length > 0 ? ` (${dirname(path)} has versions ${versions.join(', ')})` : await bundledHint(path)}`,
    );
  }
  if (!isDirectory) {
    throw new NormserveError(
      'MODEL_NOT_FOUND',
      `${path}: not a directory (expected <repository>/<model> or <repository>/<model>/<version>)`,
    );
  }
}

/**
 * Whether a directory given by path is a version directory (`<repo>/<name>/<version>`) rather
 * than a model directory: its name is a version number and it holds no version directories of
 * its own. Decided by what it holds, not by its name alone: a model may be named `123`, and
 * `<repo>/123` (holding 1/, 2/) is that model's directory.
 */
async function isVersionDirectory(clean: string): Promise<boolean> {
  if (!VERSION_NAME_PATTERN.test(basename(clean))) return false;
  return !(await new ModelRepository(dirname(clean)).isModelDirectory(basename(clean)));
}

/** A model's config.json declares its format first: `"format": "normserve.model/v1"`. */
const MODEL_FORMAT_DECLARED = /"format"\s*:\s*"normserve\.model\//;

/**
 * Which of a version's files `dir` holds, if any: model.safetensors, or a config.json that is a
 * model's, by the format it declares, damaged or not (a training config of that name, in a
 * directory given as --out, is none: h250). Read only up to the bound of any JSON file.
 */
async function holdsVersionFiles(dir: string): Promise<string | undefined> {
  if ((await stat(join(dir, WEIGHTS_FILE)).catch(() => undefined))?.isFile()) return WEIGHTS_FILE;
  const config = join(dir, CONFIG_FILE);
  const info = await stat(config).catch(() => undefined);
  if (!info?.isFile() || info.size > MAX_JSON_FILE_BYTES) return undefined;
  const text = await readFile(config, 'utf8').catch(() => '');
  return MODEL_FORMAT_DECLARED.test(text) ? CONFIG_FILE : undefined;
}

/**
 * What the directory at `path` is of a model, for a CLI told to write a repository there (train's
 * --out): a version's (it holds config.json or model.safetensors), a model's (a version directory
 * in it holds them), or neither (undefined; also when it does not exist). By what it holds, not
 * its name: a model may be named `123`, and a repository may hold such a model.
 */
export async function modelContentAt(
  path: string,
): Promise<{ kind: 'version'; file: string } | { kind: 'model'; version: string } | undefined> {
  const file = await holdsVersionFiles(path);
  if (file !== undefined) return { kind: 'version', file };
  const entries = await readdir(path, { withFileTypes: true }).catch(() => []);
  for (const entry of entries) {
    if (!entry.isDirectory() || !VERSION_NAME_PATTERN.test(entry.name)) continue;
    if ((await holdsVersionFiles(join(path, entry.name))) !== undefined)
      return { kind: 'model', version: entry.name };
  }
  return undefined;
}

/**
 * Reads a model directory given by path: a version directory (`<repo>/<name>/<version>`), or a
 * model directory (`<repo>/<name>`), which resolves to its active version (the recorded one, else
 * the highest); `given` says which it was. Used by the CLIs.
 */
export async function loadModelDirectory(path: string): Promise<{
  version: number;
  name: string;
  checkpoint: LoadedCheckpoint;
  root: string;
  /** What the path named: one version's directory, or the model's (its active version). */
  given: 'version' | 'model';
  /**
   * Set when the version opened is not the one the directory seems to name, as the server would
   * choose it (docs/model-format.md, `active-version.json`): the record names a deleted version,
   * or higher versions fail to load, so the highest that loads was taken. Say it to the user.
   */
  versionNote?: string;
}> {
  const clean = resolve(path);
  const base = basename(clean);
  await checkIsDirectory(path, clean);
  if (await isVersionDirectory(clean)) {
    const modelDir = dirname(clean);
    const name = basename(modelDir);
    const root = dirname(modelDir);
    const version = Number(base);
    const repository = new ModelRepository(root);
    return {
      version,
      name,
      checkpoint: await repository.loadVersion(name, version),
      root,
      given: 'version',
    };
  }
  const name = base;
  const root = dirname(clean);
  const repository = new ModelRepository(root);
  const versions = await repository.listVersions(name);
  if (versions.length === 0) {
    // `--model models` for `--model models/digits` is the likeliest slip: name what is in there.
    const inside = new ModelRepository(clean);
    const models: string[] = [];
    for (const model of await inside.listModels().catch(() => [])) {
      if (await inside.isModelDirectory(model)) models.push(model);
    }
    throw new NormserveError(
      'MODEL_NOT_FOUND',
      `${path}: no model version directories (expected ${path}/<version>/)${models.length > 0 ? `; it is a model repository: give one of its models, e.g. ${join(path, models[0]!)}` : ''}`,
    );
  }
  // The version an operator activated; without a record, the highest that loads. A record naming
  // a version whose directory is gone (deleted: nothing writes a record before its version is in
  // place) counts as none, as a starting server does (ModelRegistry.swap), so that a CLI opens the
  // version the server serves; an unreadable record is refused (readActive throws), and a version
  // the record names that fails to load is that failure, as the server then serves nothing.
  const active = await repository.readActive(name);
  if (active && versions.includes(active.version)) {
    return {
      version: active.version,
      name,
      checkpoint: await repository.loadVersion(name, active.version),
      root,
      given: 'model',
    };
  }
  const failed: { version: number; error: unknown }[] = [];
  for (const version of [...versions].reverse()) {
    let checkpoint: LoadedCheckpoint;
    try {
      checkpoint = await repository.loadVersion(name, version);
    } catch (error) {
      // Only a version whose files are broken is passed over: a read that failed (EIO, EMFILE,
      // EACCES: REPOSITORY_ERROR) may work the next time, and a CLI that went on with an older
      // version would recalibrate or fine-tune it, and a recalibration publish and activate it,
      // over the newest (second reader, h250).
      if (!isBrokenCheckpoint(error)) throw error;
      failed.push({ version, error });
      continue;
    }
    const notes = [
      ...(active
        ? [`${path}/${ACTIVE_FILE} names version ${active.version}, which does not exist`]
        : []),
      ...failed.map(({ error }) => (error instanceof Error ? error.message : String(error))),
    ];
    const skipped = failed.length > 0 ? `, the highest that loads` : ', the highest';
    return {
      version,
      name,
      checkpoint,
      root,
      given: 'model',
      ...(notes.length > 0
        ? {
            versionNote: `${notes.join('; ')}; using version ${version}${skipped}, as the server does${active ? ' until a version is activated' : ''}`,
          }
        : {}),
    };
  }
  // None loads: the highest one's failure, as before (the server serves none of them).
  throw failed[0]!.error;
}
