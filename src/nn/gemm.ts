/**
 * Dense matrix products in float64 for training (row-major; C is overwritten). Three layouts
 * cover a layer's forward and backward passes: C = A·Bᵀ (forward), C = Aᵀ·B (weight gradient),
 * C = A·B (input gradient). The loop orders keep the innermost loop on contiguous memory.
 */

/** C[m, n] = Σ_p A[m, p]·B[n, p]: A [m, k], B [n, k]. Blocked 2 rows × 4 columns. */
export function gemmABt(
  a: Float64Array,
  b: Float64Array,
  m: number,
  k: number,
  n: number,
  c: Float64Array,
): void {
  let i = 0;
  for (; i + 2 <= m; i += 2) {
    const a0 = i * k;
    const a1 = a0 + k;
    let j = 0;
    for (; j + 4 <= n; j += 4) {
      const b0 = j * k;
      const b1 = b0 + k;
      const b2 = b1 + k;
      const b3 = b2 + k;
      let s00 = 0;
      let s01 = 0;
      let s02 = 0;
      let s03 = 0;
      let s10 = 0;
      let s11 = 0;
      let s12 = 0;
      let s13 = 0;
      for (let p = 0; p < k; p++) {
        const x0 = a[a0 + p]!;
        const x1 = a[a1 + p]!;
        const v0 = b[b0 + p]!;
        const v1 = b[b1 + p]!;
        const v2 = b[b2 + p]!;
        const v3 = b[b3 + p]!;
        s00 += x0 * v0;
        s01 += x0 * v1;
        s02 += x0 * v2;
        s03 += x0 * v3;
        s10 += x1 * v0;
        s11 += x1 * v1;
        s12 += x1 * v2;
        s13 += x1 * v3;
      }
      const c0 = i * n + j;
      const c1 = c0 + n;
      c[c0] = s00;
      c[c0 + 1] = s01;
      c[c0 + 2] = s02;
      c[c0 + 3] = s03;
      c[c1] = s10;
      c[c1 + 1] = s11;
      c[c1 + 2] = s12;
      c[c1 + 3] = s13;
    }
    for (; j < n; j++) {
      const b0 = j * k;
      let s0 = 0;
      let s1 = 0;
      for (let p = 0; p < k; p++) {
        s0 += a[a0 + p]! * b[b0 + p]!;
        s1 += a[a1 + p]! * b[b0 + p]!;
      }
      c[i * n + j] = s0;
      c[(i + 1) * n + j] = s1;
    }
  }
  for (; i < m; i++) {
    const a0 = i * k;
    for (let j = 0; j < n; j++) {
      const b0 = j * k;
      let s = 0;
      for (let p = 0; p < k; p++) s += a[a0 + p]! * b[b0 + p]!;
      c[i * n + j] = s;
    }
  }
}

/**
 * C[m, n] = Σ_r A[r, m]·B[r, n]: A [rows, m], B [rows, n] (a sum of outer products), four rows
 * of A and B per pass so that each element of C is loaded and stored once per four products.
 */
export function gemmAtB(
  a: Float64Array,
  b: Float64Array,
  rows: number,
  m: number,
  n: number,
  c: Float64Array,
): void {
  c.fill(0, 0, m * n);
  let r = 0;
  for (; r + 4 <= rows; r += 4) {
    const a0 = r * m;
    const a1 = a0 + m;
    const a2 = a1 + m;
    const a3 = a2 + m;
    const b0 = r * n;
    const b1 = b0 + n;
    const b2 = b1 + n;
    const b3 = b2 + n;
    for (let i = 0; i < m; i++) {
      const v0 = a[a0 + i]!;
      const v1 = a[a1 + i]!;
      const v2 = a[a2 + i]!;
      const v3 = a[a3 + i]!;
      const ci = i * n;
      for (let j = 0; j < n; j++) {
        c[ci + j] =
          c[ci + j]! + v0 * b[b0 + j]! + v1 * b[b1 + j]! + v2 * b[b2 + j]! + v3 * b[b3 + j]!;
      }
    }
  }
  for (; r < rows; r++) {
    const ar = r * m;
    const br = r * n;
    for (let i = 0; i < m; i++) {
      const v = a[ar + i]!;
      const ci = i * n;
      for (let j = 0; j < n; j++) c[ci + j] = c[ci + j]! + v * b[br + j]!;
    }
  }
}

/**
 * C[m, n] = Σ_p A[m, p]·B[p, n]: A [m, k], B [k, n], four rows of B per pass (each element of C
 * loaded and stored once per four products).
 */
export function gemmAB(
  a: Float64Array,
  b: Float64Array,
  m: number,
  k: number,
  n: number,
  c: Float64Array,
): void {
  c.fill(0, 0, m * n);
  for (let i = 0; i < m; i++) {
    const ai = i * k;
    const ci = i * n;
    let p = 0;
    for (; p + 4 <= k; p += 4) {
      const v0 = a[ai + p]!;
      const v1 = a[ai + p + 1]!;
      const v2 = a[ai + p + 2]!;
      const v3 = a[ai + p + 3]!;
      const b0 = p * n;
      const b1 = b0 + n;
      const b2 = b1 + n;
      const b3 = b2 + n;
      for (let j = 0; j < n; j++) {
        c[ci + j] =
          c[ci + j]! + v0 * b[b0 + j]! + v1 * b[b1 + j]! + v2 * b[b2 + j]! + v3 * b[b3 + j]!;
      }
    }
    for (; p < k; p++) {
      const v = a[ai + p]!;
      const bp = p * n;
      for (let j = 0; j < n; j++) c[ci + j] = c[ci + j]! + v * b[bp + j]!;
    }
  }
}
