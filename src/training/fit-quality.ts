/** RMSE and R² of a regression's predictions, for training's test rows and the predict CLI. */
export interface FitQuality {
  rmse: number;
  /** 1 − MSE / Var(y); absent for a constant y (no variance to explain). */
  r2?: number;
}

/** RMSE and R² = 1 − MSE / Var(y) of a regression evaluation (R² omitted for a constant y). */
export function fitQuality(mse: number, targets: ArrayLike<number>): FitQuality {
  const n = targets.length;
  let sum = 0;
  for (let i = 0; i < n; i++) sum += targets[i]!;
  const mean = sum / n;
  let sq = 0;
  for (let i = 0; i < n; i++) sq += (targets[i]! - mean) * (targets[i]! - mean);
  const variance = sq / n;
  return { rmse: Math.sqrt(mse), ...(variance > 0 ? { r2: 1 - mse / variance } : {}) };
}

/** fitQuality of one output per row against its target, the MSE summed in float64. */
export function regressionFit(outputs: ArrayLike<number>, targets: ArrayLike<number>): FitQuality {
  let sq = 0;
  for (let i = 0; i < targets.length; i++) sq += (targets[i]! - outputs[i]!) ** 2;
  return fitQuality(sq / targets.length, targets);
}
