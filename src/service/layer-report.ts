import { type LayerSpec, layerDefinition } from '../checkpoint/index.js';
import type { AvailableVersion } from './model-registry.js';

/** A config.json layer entry with what compilation made of it (nested layers alike). */
export type CompiledLayer = Record<string, unknown> & { type: string; compiled: string | null };

/**
 * The layers of a served version for its metadata: each config entry (top level with its
 * `index`, nested ones with their `path`, the state-dict prefix) and its fate in the compiled
 * plan (`folded_into_previous_conv`, `fused_activation`, …); a block's nested layers alike.
 */
export function compiledLayers(served: AvailableVersion): (CompiledLayer & { index: number })[] {
  const fates = new Map(served.compiled.plan.layers.map((f) => [f.path, f.fate]));
  const describe = (spec: LayerSpec, path: string): CompiledLayer => {
    const definition = layerDefinition(spec);
    const children = definition.children?.(spec);
    return {
      ...spec,
      compiled: fates.get(path) ?? null,
      ...(children
        ? {
            layers: children.map((child, j) => {
              const at = `${path}.${definition.childName!(j)}`;
              return { path: at, ...describe(child, at) };
            }),
          }
        : {}),
    };
  };
  return served.checkpoint.config.layers.map((spec, index) => ({
    index,
    ...describe(spec, String(index)),
  }));
}

/**
 * The BatchNorms folded into a kernel: the top-level index of a top-level one, the path
 * (`"3.body.1"`) of one inside a block.
 */
export function foldedBatchNorms(served: AvailableVersion): (number | string)[] {
  return served.compiled.plan.layers
    .filter((f) => f.kind.startsWith('BatchNorm') && f.fate.startsWith('folded'))
    .map((f) => (f.path.includes('.') ? f.path : f.index));
}
