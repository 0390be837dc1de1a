import { BatchNorm, type Module, namedModules } from '../nn/index.js';

/**
 * A network's BatchNorms by state-dict path, as a compiled plan's batchNormInputs name them. A
 * path that names no BatchNorm means the plan was not compiled from this network: thrown.
 */
export function batchNormLookup(network: Module): (path: string) => BatchNorm {
  const modules = new Map(namedModules(network));
  return (path) => {
    const bn = modules.get(path);
    if (!(bn instanceof BatchNorm)) throw new Error(`the network has no BatchNorm ${path}`);
    return bn;
  };
}
