import { locals } from '../../nn/wasm/index.js';
import { ACTIVATION_CODES } from '../kernels.js';

/**
 * A compiled plan as the engine runs it: a program of fixed-size step records in linear memory,
 * interpreted by `run`, which both the calling thread and the helper threads execute on their own
 * rows. The layout is written by wasm-executor.ts from these constants.
 */

/** Program header, i32 words. */
export const PROGRAM = {
  steps: 0,
  inWidth: 1,
  outWidth: 2,
  /** Rows per chunk: each step runs on a chunk before the next step starts. */
  chunkRows: 3,
  /** Bytes of one of a thread's two ping-pong buffers. */
  bufferBytes: 4,
  /** Where a thread's skip buffers and its convolution scratch start, from its scratch (bytes). */
  skipsAt: 5,
  convAt: 6,
  /** The tap table of the call (0: no statistics): see TAP. */
  taps: 7,
  /** Steps this call runs: all of them, or the prefix a statistics call needs. */
  limit: 8,
  /** Byte offset of a thread's tap accumulators from the start of its scratch. */
  accumulators: 9,
  headerBytes: 40,
} as const;

/**
 * The tap table of a call: one i32 per tensor and reading, at word 2·(step + 1) + (pre ? 1 : 0)
 * (step −1 is the input), 0 or the address of the first of its tap records: channels, the byte
 * offset of its accumulators (Σx then Σx², f64 × channels) within the thread's accumulator area,
 * the address of its clip bounds (f32 × channels lower, then upper; 0: not clipped), and the
 * address of the next record reading the same tensor (0: the last) — one tensor read unclipped
 * and, with each BatchNorm's own bounds, clipped for live drift.
 */
export const TAP = { channels: 0, offset: 1, bounds: 2, next: 3, bytes: 16 } as const;

/** A step record: i32 words (slope f32, eps f64 at its byte offset). */
export const STEP = {
  op: 0,
  inFeatures: 1,
  outFeatures: 2,
  /** Packed weight / scale / LayerNorm weight (0: none). */
  first: 3,
  /** Bias / shift / LayerNorm bias. */
  second: 4,
  activation: 5,
  slope: 6,
  /** LayerNorm: groups per row; pooling: channels; skips: the slot. */
  extra: 7,
  epsByteOffset: 32,
  bytes: 48,
} as const;

export const OP = {
  dense: 1,
  affine: 2,
  layernorm: 3,
  activation: 4,
  conv2d: 5,
  maxpool2d: 6,
  avgpool2d: 7,
  save_skip: 8,
  add_skip: 9,
  /** A dense step on the float64-accumulating GEMM (nn/wasm/gemm64-wat.ts): statistics plans. */
  dense64: 10,
} as const;

/**
 * The optional parts of the engine module. A plan needs `elementwise` for affine, LayerNorm and
 * stand-alone activation steps and for activations the GEMM's store does not apply (anything but
 * ReLU and LeakyReLU), `cnn` for convolutions, pooling and residual skips (it brings the element-wise
 * part too). A module without them is smaller, so assembles and compiles sooner (a model's load).
 */
export interface EngineParts {
  elementwise: boolean;
  cnn: boolean;
}

export const ALL_PARTS: EngineParts = { elementwise: true, cnn: true };

/**
 * A helper thread's control block, i32 words (one per helper; see serve). A share is rows
 * r0 … r1−1 (chunk 0), or, with chunk > 0, the rows below r1 that the helper claims `chunk` at a
 * time from the shared row cursor at byte address `cursorAt` (the calling thread and every helper
 * claim from it); `current` is the first row of the chunk the helper is running (−1: none).
 */
export const CONTROL = {
  seq: 0,
  r0: 1,
  r1: 2,
  done: 3,
  state: 4,
  chunk: 5,
  cursorAt: 6,
  current: 7,
  /** The row cursor of a chunked call, in the first helper's block. */
  cursor: 8,
  bytes: 64,
} as const;
export const HELPER_STATE = { starting: 0, ready: 1, stopping: 2, failed: 3 } as const;
/**
 * The `done` word of a share of rows: posted by the caller, claimed by the helper when it starts
 * (compare-and-swap from posted), finished when it is done; or revoked by the caller when the
 * helper had not claimed it in time (a helper without a free core): a synchronous split call's
 * caller has then run every chunk itself, an asynchronous call's caller runs the share. failed:
 * the helper thread died.
 */
export const DONE = { posted: 0, finished: 1, claimed: 2, revoked: 3, failed: -1 } as const;

const word = (ptr: string, index: number, type = 'i32') =>
  `(${type}.load offset=${index * 4} ${ptr})`;

/** The affine, LayerNorm (a row in `extra` groups) and stand-alone activation steps. */
const elementwiseSteps = `
        (if (i32.eq (local.get $op) (i32.const ${OP.affine}))
          (then (call $affine (local.get $src) (local.get $dst) (local.get $rows) (local.get $n)
            ${word('(local.get $st)', STEP.first)} ${word('(local.get $st)', STEP.second)}
            (local.get $code) (local.get $slope))))
        (if (i32.eq (local.get $op) (i32.const ${OP.layernorm}))
          (then (call $layernorm (local.get $src) (local.get $dst)
            (i32.mul (local.get $rows) ${word('(local.get $st)', STEP.extra)})
            ${word('(local.get $st)', STEP.inFeatures)}
            (f64.load offset=${STEP.epsByteOffset} (local.get $st))
            ${word('(local.get $st)', STEP.first)} ${word('(local.get $st)', STEP.second)}
            (local.get $code) (local.get $slope))))
        (if (i32.eq (local.get $op) (i32.const ${OP.activation}))
          (then (call $act_pass (local.get $src) (local.get $dst) (i32.mul (local.get $rows) (local.get $n))
            (local.get $code) (local.get $slope))))`;

/** A dense step on the float64-accumulating GEMM (statistics plans), then its activation. */
const dense64Step = `
        (if (i32.eq (local.get $op) (i32.const ${OP.dense64}))
          (then
            (call $gemm64 (local.get $rows) (local.get $n) ${word('(local.get $st)', STEP.inFeatures)}
              (local.get $src) (i32.shl ${word('(local.get $st)', STEP.inFeatures)} (i32.const 2))
              ${word('(local.get $st)', STEP.first)} ${word('(local.get $st)', STEP.second)}
              (local.get $dst) (i32.shl (local.get $n) (i32.const 2)) (local.get $eslope))
            (if (i32.gt_u (local.get $code) (i32.const ${ACTIVATION_CODES.leaky_relu}))
              (then (call $act_pass (local.get $dst) (local.get $dst)
                (i32.mul (local.get $rows) (local.get $n)) (local.get $code) (local.get $slope))))))`;

/**
 * The convolutional steps: conv2d (`first`: its descriptor, see nn/wasm/conv-wat.ts), max and mean
 * pooling (`first`: the window table, `second`: the input's row bytes, `extra`: channels), and the
 * residual skips (`extra`: the slot), kept in the thread's skip buffers.
 */
const cnnSteps = `
        (if (i32.eq (local.get $op) (i32.const ${OP.conv2d}))
          (then
            (call $conv2d ${word('(local.get $st)', STEP.first)} (local.get $src) (local.get $dst)
              (local.get $rows) (local.get $eslope) (local.get $tmp)
              (i32.add (local.get $scratch) ${word('(local.get $prog)', PROGRAM.convAt)}))
            (if (i32.gt_u (local.get $code) (i32.const ${ACTIVATION_CODES.leaky_relu}))
              (then (call $act_pass (local.get $dst) (local.get $dst)
                (i32.mul (local.get $rows) (local.get $n)) (local.get $code) (local.get $slope))))))
        (if (i32.or (i32.eq (local.get $op) (i32.const ${OP.maxpool2d}))
              (i32.eq (local.get $op) (i32.const ${OP.avgpool2d})))
          (then
            (call $pool (local.get $src) (local.get $dst)
              (i32.mul (local.get $rows) ${word('(local.get $st)', STEP.extra)})
              (i32.shl (i32.div_u ${word('(local.get $st)', STEP.inFeatures)} ${word('(local.get $st)', STEP.extra)})
                (i32.const 2))
              ${word('(local.get $st)', STEP.second)} ${word('(local.get $st)', STEP.first)}
              (i32.div_u (local.get $n) ${word('(local.get $st)', STEP.extra)})
              (i32.eq (local.get $op) (i32.const ${OP.avgpool2d})))
            (if (local.get $code)
              (then (call $act_pass (local.get $dst) (local.get $dst)
                (i32.mul (local.get $rows) (local.get $n)) (local.get $code) (local.get $slope))))))
        (if (i32.eq (local.get $op) (i32.const ${OP.save_skip}))
          (then (memory.copy
            (i32.add (i32.add (local.get $scratch) ${word('(local.get $prog)', PROGRAM.skipsAt)})
              (i32.mul ${word('(local.get $st)', STEP.extra)} (local.get $bb)))
            (local.get $src) (i32.shl (i32.mul (local.get $rows) (local.get $n)) (i32.const 2)))))
        (if (i32.eq (local.get $op) (i32.const ${OP.add_skip}))
          (then (call $add_act (local.get $src)
            (i32.add (i32.add (local.get $scratch) ${word('(local.get $prog)', PROGRAM.skipsAt)})
              (i32.mul ${word('(local.get $st)', STEP.extra)} (local.get $bb)))
            (local.get $dst) (i32.mul (local.get $rows) (local.get $n)) (local.get $code) (local.get $slope))))`;

/**
 * The slope of the GEMM's epilogue that applies the activation with code $`code` (RELU_SLOPE, −0:
 * ReLU; the step's slope: LeakyReLU, +0 for LeakyReLU(0); 1: the identity, for the others, which
 * run as a pass afterwards). gemm-wat.ts tells ReLU from LeakyReLU(0) by the sign of the zero: a
 * negative v gives +0 and −0 (torch.relu, torch's v·0), −∞ gives +0 and NaN.
 */
const epilogueSlope = (
  code: string,
) => `(if (result f32) (i32.eq (local.get $${code}) (i32.const ${ACTIVATION_CODES.relu}))
          (then (f32.const -0))
          (else (if (result f32) (i32.eq (local.get $${code}) (i32.const ${ACTIVATION_CODES.leaky_relu}))
            (then (local.get $slope))
            (else (f32.const 1)))))`;

/**
 * run(program, input, output, r0, r1, scratch): rows r0 … r1−1 of input ([rows, inWidth]) through
 * every step into output ([rows, outWidth]), a chunk of rows at a time. A thread's scratch holds
 * the two buffers of a chunk's intermediate results, the GEMM's tile scratch, then (at the header's
 * offsets) one buffer per skip slot and the convolutions' scratch.
 */
function runWat(parts: EngineParts): string {
  const elementwise = parts.elementwise || parts.cnn;
  return `
  (func $run (export "run") (param $prog i32) (param $in i32) (param $out i32) (param $r0 i32)
      (param $r1 i32) (param $scratch i32)
    ${locals('i32', 'steps', 'inw', 'outw', 'chunk', 'bb', 'rows', 'i', 'st', 'src', 'dst', 'flip', 'n', 'code', 'op', 'tmp')}
    ${locals('f32', 'slope', 'eslope')}
    ${locals('i32', 'taps', 'limit', 'acc', 'pre', 'real')}
    (local.set $steps ${word('(local.get $prog)', PROGRAM.steps)})
    (local.set $inw ${word('(local.get $prog)', PROGRAM.inWidth)})
    (local.set $outw ${word('(local.get $prog)', PROGRAM.outWidth)})
    (local.set $chunk ${word('(local.get $prog)', PROGRAM.chunkRows)})
    (local.set $bb ${word('(local.get $prog)', PROGRAM.bufferBytes)})
    (local.set $tmp (i32.add (local.get $scratch) (i32.shl (local.get $bb) (i32.const 1))))
    (local.set $taps ${word('(local.get $prog)', PROGRAM.taps)})
    (local.set $limit ${word('(local.get $prog)', PROGRAM.limit)})
    (local.set $acc (i32.add (local.get $scratch) ${word('(local.get $prog)', PROGRAM.accumulators)}))
    (block $done (loop $chunks
      (br_if $done (i32.ge_s (local.get $r0) (local.get $r1)))
      (local.set $rows (i32.sub (local.get $r1) (local.get $r0)))
      (if (i32.gt_s (local.get $rows) (local.get $chunk)) (then (local.set $rows (local.get $chunk))))
      (local.set $src (i32.add (local.get $in) (i32.mul (local.get $r0) (i32.shl (local.get $inw) (i32.const 2)))))
      (local.set $flip (i32.const 0))
      (local.set $i (i32.const 0))
      (if (local.get $taps) (then
        (call $tap (i32.load (local.get $taps)) (local.get $src) (local.get $rows) (local.get $inw) (local.get $acc))))
      (block $steps_done (loop $step
        (br_if $steps_done (i32.ge_s (local.get $i) (local.get $limit)))
        (local.set $st (i32.add (i32.add (local.get $prog) (i32.const ${PROGRAM.headerBytes}))
          (i32.mul (local.get $i) (i32.const ${STEP.bytes}))))
        (local.set $dst (if (result i32) (i32.eq (local.get $i) (i32.sub (local.get $steps) (i32.const 1)))
          (then (i32.add (local.get $out) (i32.mul (local.get $r0) (i32.shl (local.get $outw) (i32.const 2)))))
          (else (i32.add (local.get $scratch) (i32.mul (local.get $flip) (local.get $bb))))))
        (local.set $n ${word('(local.get $st)', STEP.outFeatures)})
        (local.set $code ${word('(local.get $st)', STEP.activation)})
        (local.set $slope ${word('(local.get $st)', STEP.slope, 'f32')})
        (local.set $op ${word('(local.get $st)', STEP.op)})
        ;; A pre-activation tap: the step runs without its activation, is read, then activated.
        (local.set $pre (if (result i32) (local.get $taps)
          (then (i32.load offset=12 (i32.add (local.get $taps) (i32.shl (local.get $i) (i32.const 3)))))
          (else (i32.const 0))))
        (local.set $real (local.get $code))
        (if (local.get $pre) (then (local.set $code (i32.const 0))))
        ;; ReLU and LeakyReLU are the GEMM's epilogue (slope +0 / the slope); the others run as a
        ;; pass over the stored chunk, after an identity epilogue (slope 1).
        (local.set $eslope ${epilogueSlope('code')})
        (if (i32.eq (local.get $op) (i32.const ${OP.dense}))
          (then
            (call $gemm (local.get $rows) (local.get $n) ${word('(local.get $st)', STEP.inFeatures)}
              (local.get $src) (i32.shl ${word('(local.get $st)', STEP.inFeatures)} (i32.const 2))
              ${word('(local.get $st)', STEP.first)} ${word('(local.get $st)', STEP.second)}
              (local.get $dst) (i32.shl (local.get $n) (i32.const 2))
              (local.get $eslope) (local.get $tmp))
            ${
              elementwise
                ? `(if (i32.gt_u (local.get $code) (i32.const ${ACTIVATION_CODES.leaky_relu}))
              (then (call $act_pass (local.get $dst) (local.get $dst)
                (i32.mul (local.get $rows) (local.get $n)) (local.get $code) (local.get $slope))))`
                : ''
            }))
        ${elementwise ? dense64Step : ''}
        ${elementwise ? elementwiseSteps : ''}
        ${parts.cnn ? cnnSteps : ''}
        ${
          elementwise
            ? `;; Read, then activated: in the same pass when the GEMM's epilogue is the activation.
        (if (local.get $pre) (then
          (if (i32.le_u (local.get $real) (i32.const ${ACTIVATION_CODES.leaky_relu}))
            (then (call $tap_act (local.get $pre) (local.get $dst) (local.get $rows) (local.get $n)
              (local.get $acc) ${epilogueSlope('real')}))
            (else
              (call $tap (local.get $pre) (local.get $dst) (local.get $rows) (local.get $n) (local.get $acc))
              (call $act_pass (local.get $dst) (local.get $dst)
                (i32.mul (local.get $rows) (local.get $n)) (local.get $real) (local.get $slope))))))`
            : ''
        }
        ;; save_skip leaves the tensor where it is (it only keeps a copy).
        (if (i32.ne (local.get $op) (i32.const ${OP.save_skip})) (then
          (local.set $src (local.get $dst))
          (local.set $flip (i32.xor (local.get $flip) (i32.const 1)))))
        ;; The step's output tensor (src from here on, save_skip's too) into its tap.
        (if (local.get $taps) (then
          (call $tap (i32.load offset=8 (i32.add (local.get $taps) (i32.shl (local.get $i) (i32.const 3))))
            (local.get $src) (local.get $rows) (local.get $n) (local.get $acc))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $step)))
      (local.set $r0 (i32.add (local.get $r0) (local.get $rows)))
      (br $chunks))))`;
}

/**
 * serve(control, program, input, output, scratch): a helper thread's loop. It announces itself
 * (state = ready), then sleeps on the sequence word; each increment posts a share, which it
 * claims (done: posted → claimed) and runs — rows r0 … r1−1, or chunks taken from the row cursor
 * until it passes r1 — then sets done = finished and wakes the caller; a share the caller revoked
 * meanwhile is left alone. state = stopping ends the loop.
 */
const serve = `
  (func $serve (export "serve") (param $ctl i32) (param $prog i32) (param $in i32) (param $out i32)
      (param $scratch i32)
    (local $seen i32) (local $chunk i32) (local $cursor i32) (local $end i32) (local $r i32)
    (local.set $seen (i32.atomic.load offset=${CONTROL.seq * 4} (local.get $ctl)))
    (i32.atomic.store offset=${CONTROL.state * 4} (local.get $ctl) (i32.const ${HELPER_STATE.ready}))
    (drop (memory.atomic.notify offset=${CONTROL.state * 4} (local.get $ctl) (i32.const 1)))
    (loop $wait
      (drop (memory.atomic.wait32 offset=${CONTROL.seq * 4} (local.get $ctl) (local.get $seen) (i64.const -1)))
      (br_if $wait (i32.eq (i32.atomic.load offset=${CONTROL.seq * 4} (local.get $ctl)) (local.get $seen)))
      (local.set $seen (i32.atomic.load offset=${CONTROL.seq * 4} (local.get $ctl)))
      (if (i32.eq (i32.atomic.load offset=${CONTROL.state * 4} (local.get $ctl)) (i32.const ${HELPER_STATE.stopping}))
        (then (return)))
      (if (i32.eq
            (i32.atomic.rmw.cmpxchg offset=${CONTROL.done * 4} (local.get $ctl)
              (i32.const ${DONE.posted}) (i32.const ${DONE.claimed}))
            (i32.const ${DONE.posted}))
        (then
          (local.set $chunk (i32.atomic.load offset=${CONTROL.chunk * 4} (local.get $ctl)))
          (local.set $end (i32.atomic.load offset=${CONTROL.r1 * 4} (local.get $ctl)))
          (if (i32.eqz (local.get $chunk))
            (then
              (call $run (local.get $prog) (local.get $in) (local.get $out)
                (i32.atomic.load offset=${CONTROL.r0 * 4} (local.get $ctl)) (local.get $end)
                (local.get $scratch)))
            (else
              (local.set $cursor (i32.atomic.load offset=${CONTROL.cursorAt * 4} (local.get $ctl)))
              (block $drained
                (loop $claim
                  (local.set $r (i32.atomic.rmw.add (local.get $cursor) (local.get $chunk)))
                  (br_if $drained (i32.ge_s (local.get $r) (local.get $end)))
                  (i32.atomic.store offset=${CONTROL.current * 4} (local.get $ctl) (local.get $r))
                  (call $run (local.get $prog) (local.get $in) (local.get $out) (local.get $r)
                    (select (local.get $end) (i32.add (local.get $r) (local.get $chunk))
                      (i32.lt_s (local.get $end) (i32.add (local.get $r) (local.get $chunk))))
                    (local.get $scratch))
                  (br $claim)))
              (i32.atomic.store offset=${CONTROL.current * 4} (local.get $ctl) (i32.const -1))))
          (i32.atomic.store offset=${CONTROL.done * 4} (local.get $ctl) (i32.const ${DONE.finished}))
          (drop (memory.atomic.notify offset=${CONTROL.done * 4} (local.get $ctl) (i32.const 1)))))
      (br $wait)))`;

/**
 * tap(record, src, rows, width, acc): adds the channel sums of a [rows, width] block into the
 * accumulators of each record of the chain (nothing when record is 0), clipped where the record
 * has bounds. Every step's record has its output width in outFeatures, so the interpreter taps
 * any step kind the same way, after the step's kernel.
 */
const tap = `
  (func $tap (param $rec i32) (param $src i32) (param $rows i32) (param $width i32) (param $acc i32)
    (block $end (loop $next
      (br_if $end (i32.eqz (local.get $rec)))
      (call $tap_one (local.get $rec) (local.get $src) (local.get $rows) (local.get $width) (local.get $acc))
      (local.set $rec (i32.load offset=${TAP.next * 4} (local.get $rec)))
      (br $next))))`;

/** One record's sums of the block. */
const tapOne = `
  (func $tap_one (param $rec i32) (param $src i32) (param $rows i32) (param $width i32) (param $acc i32)
    (local $bounds i32)
    (local.set $bounds (i32.load offset=${TAP.bounds * 4} (local.get $rec)))
    (if (local.get $bounds)
      (then (call $channel_sums_clip (local.get $src) (local.get $rows) (local.get $width)
        (i32.load offset=${TAP.channels * 4} (local.get $rec))
        (i32.add (local.get $acc) (i32.load offset=${TAP.offset * 4} (local.get $rec)))
        (local.get $bounds)))
      (else (call $channel_sums (local.get $src) (local.get $rows) (local.get $width)
        (i32.load offset=${TAP.channels * 4} (local.get $rec))
        (i32.add (local.get $acc) (i32.load offset=${TAP.offset * 4} (local.get $rec)))))))`;

/**
 * tap_act(record, src, rows, width, acc, slope): the taps of the chain, the last one with the
 * GEMM's epilogue applied in place in the same pass (the block is activated once, after every
 * record read it).
 */
const tapAct = `
  (func $tap_act (param $rec i32) (param $src i32) (param $rows i32) (param $width i32) (param $acc i32)
      (param $slope f32)
    (local $bounds i32)
    (block $last (loop $next
      (br_if $last (i32.eqz (i32.load offset=${TAP.next * 4} (local.get $rec))))
      (call $tap_one (local.get $rec) (local.get $src) (local.get $rows) (local.get $width) (local.get $acc))
      (local.set $rec (i32.load offset=${TAP.next * 4} (local.get $rec)))
      (br $next)))
    (local.set $bounds (i32.load offset=${TAP.bounds * 4} (local.get $rec)))
    (if (local.get $bounds)
      (then (call $channel_sums_clip_act (local.get $src) (local.get $rows) (local.get $width)
        (i32.load offset=${TAP.channels * 4} (local.get $rec))
        (i32.add (local.get $acc) (i32.load offset=${TAP.offset * 4} (local.get $rec)))
        (local.get $bounds) (local.get $slope)))
      (else (call $channel_sums_act (local.get $src) (local.get $rows) (local.get $width)
        (i32.load offset=${TAP.channels * 4} (local.get $rec))
        (i32.add (local.get $acc) (i32.load offset=${TAP.offset * 4} (local.get $rec)))
        (local.get $slope)))))`;

/** The interpreter (with the steps of `parts`), the statistics taps and the helpers' loop. */
export function programWat(parts: EngineParts = ALL_PARTS): string {
  return [tap, tapOne, tapAct, runWat(parts), serve].join('\n');
}
