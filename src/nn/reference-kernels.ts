import type { AdamStep, ChannelLayout, Kernels, MatmulSpec, SgdStep } from './kernels.js';
import type { Parameter } from './parameter.js';

/**
 * C = bias + A·B, the definition every implementation follows: per output, the float64 sum starts
 * at bias[j] + 0 (a −0 bias as +0: PyTorch's addmm sums from +0 and adds the bias last, so its
 * zeros are never −0) or +0, and adds A[i, p]·B[p, j] for p = 0 … K−1 (a product of two float32
 * values is exact in float64); C gets the sum, or C + sum with accumulate, rounded where it is stored (a
 * Float32Array rounds to float32, a Float64Array keeps it). Loop orders differ by layout — dot
 * products when B is stored transposed, rows of float64 sums built p by p otherwise — but every
 * output sees its terms in the same order.
 */
function matmul(spec: MatmulSpec): void {
  const { m, n, k, a, b, bias, c } = spec;
  const transA = spec.transA === true;
  const accumulate = spec.accumulate === true;
  const store = (index: number, sum: number) => {
    c[index] = accumulate ? c[index]! + sum : sum;
  };
  if (spec.transB) {
    for (let i = 0; i < m; i++) {
      for (let j = 0; j < n; j++) {
        const bj = j * k;
        let acc = bias ? bias[j]! + 0 : 0;
        if (transA) {
          for (let p = 0; p < k; p++) acc += a[p * m + i]! * b[bj + p]!;
        } else {
          const ai = i * k;
          for (let p = 0; p < k; p++) acc += a[ai + p]! * b[bj + p]!;
        }
        store(i * n + j, acc);
      }
    }
    return;
  }
  const row = new Float64Array(n);
  for (let i = 0; i < m; i++) {
    if (bias) for (let j = 0; j < n; j++) row[j] = bias[j]! + 0;
    else row.fill(0);
    for (let p = 0; p < k; p++) {
      const x = transA ? a[p * m + i]! : a[i * k + p]!;
      const bp = p * n;
      for (let j = 0; j < n; j++) row[j] = row[j]! + x * b[bp + j]!;
    }
    const ci = i * n;
    for (let j = 0; j < n; j++) store(ci + j, row[j]!);
  }
}

/** Calls f(e, ch) for every element of an [N, C, S] layout, in order. */
function forEachElement(layout: ChannelLayout, f: (e: number, ch: number) => void): void {
  const { n, c, s } = layout;
  let e = 0;
  for (let b = 0; b < n; b++) for (let ch = 0; ch < c; ch++) for (let q = 0; q < s; q++) f(e++, ch);
}

/** The reference: plain JavaScript, float64 arithmetic over float32 storage. */
export const referenceKernels: Kernels = {
  name: 'js',

  adopt(parameter: Parameter): void {
    // Ordinary arrays stay; storage in another implementation's memory is copied back.
    if (parameter.value.data.buffer instanceof ArrayBuffer) return;
    parameter.moveTo(
      new Float32Array(parameter.value.numel),
      new Float32Array(parameter.value.numel),
    );
  },

  allocate: (length) => new Float32Array(length),

  matmul,

  channelSums(x, layout, sum) {
    forEachElement(layout, (e, ch) => {
      sum[ch] = sum[ch]! + x[e]!;
    });
  },

  channelSumSquares(x, layout, mean, sum) {
    forEachElement(layout, (e, ch) => {
      const d = x[e]! - mean[ch]!;
      sum[ch] = sum[ch]! + d * d;
    });
  },

  batchNormNormalize(x, out, layout, { mean, invstd, gamma, beta }) {
    forEachElement(layout, (e, ch) => {
      out[e] = (x[e]! - mean[ch]!) * invstd[ch]! * gamma[ch]! + beta[ch]!;
    });
  },

  batchNormBackwardSums(dy, x, layout, { mean, invstd, sumDy, sumDyXhat }) {
    forEachElement(layout, (e, ch) => {
      sumDy[ch] = sumDy[ch]! + dy[e]!;
      sumDyXhat[ch] = sumDyXhat[ch]! + dy[e]! * ((x[e]! - mean[ch]!) * invstd[ch]!);
    });
  },

  batchNormInputGrad(dy, x, dx, layout, { mean, invstd, scaleOverCount, sumDy, sumDyXhat }, count) {
    forEachElement(layout, (e, ch) => {
      const xhat = (x[e]! - mean[ch]!) * invstd[ch]!;
      dx[e] = scaleOverCount[ch]! * (count * dy[e]! - sumDy[ch]! - xhat * sumDyXhat[ch]!);
    });
  },

  channelScale(dy, dx, layout, scale) {
    forEachElement(layout, (e, ch) => {
      dx[e] = scale[ch]! * dy[e]!;
    });
  },

  adamStep(theta, grad, m, v, h: AdamStep) {
    const { mode, decay, weightDecay, beta1, oneMinusBeta1, beta2, oneMinusBeta2 } = h;
    const { stepSize, biasCorrection2Sqrt, eps } = h;
    for (let i = 0; i < theta.length; i++) {
      let g = grad[i]!;
      if (mode === 1) theta[i] = theta[i]! * decay;
      else if (mode === 2) g += weightDecay * theta[i]!;
      m[i] = beta1 * m[i]! + oneMinusBeta1 * g;
      v[i] = beta2 * v[i]! + oneMinusBeta2 * g * g;
      theta[i] = theta[i]! - (stepSize * m[i]!) / (Math.sqrt(v[i]!) / biasCorrection2Sqrt + eps);
    }
  },

  sgdStep(theta, grad, buf, h: SgdStep) {
    const { lr, weightDecay, momentum, oneMinusDampening, first, nesterov } = h;
    for (let i = 0; i < theta.length; i++) {
      let g = grad[i]! + weightDecay * theta[i]!;
      if (buf) {
        buf[i] = first ? g : momentum * buf[i]! + oneMinusDampening * g;
        g = nesterov ? g + momentum * buf[i]! : buf[i]!;
      }
      theta[i] = theta[i]! - lr * g;
    }
  },
};
