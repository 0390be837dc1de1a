import { compileNetwork, type EngineName } from '../../src/inference/index.js';
import { loadModelDirectory } from '../../src/repository/index.js';
import type { PictureSource } from '../../src/service/index.js';

/** The pictures' source of a model directory in eval mode, its fused plan, on `engine`. */
export async function pictureSource(dir: string, engine: EngineName): Promise<PictureSource> {
  const { checkpoint } = await loadModelDirectory(dir);
  const network = checkpoint.network.eval();
  const { input_transform: inputTransform, input_shape: inputShape } = checkpoint.config;
  return {
    network,
    inputTransform,
    inputShape,
    plan: compileNetwork(network, inputTransform, inputShape),
    engine,
  };
}
