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
  headerBytes: 32,
} as const;

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

/** A helper thread's control block, i32 words (one per helper; see serve). */
export const CONTROL = { seq: 0, r0: 1, r1: 2, done: 3, state: 4, bytes: 64 } as const;
export const HELPER_STATE = { starting: 0, ready: 1, stopping: 2, failed: 3 } as const;

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
    (local.set $steps ${word('(local.get $prog)', PROGRAM.steps)})
    (local.set $inw ${word('(local.get $prog)', PROGRAM.inWidth)})
    (local.set $outw ${word('(local.get $prog)', PROGRAM.outWidth)})
    (local.set $chunk ${word('(local.get $prog)', PROGRAM.chunkRows)})
    (local.set $bb ${word('(local.get $prog)', PROGRAM.bufferBytes)})
    (local.set $tmp (i32.add (local.get $scratch) (i32.shl (local.get $bb) (i32.const 1))))
    (block $done (loop $chunks
      (br_if $done (i32.ge_s (local.get $r0) (local.get $r1)))
      (local.set $rows (i32.sub (local.get $r1) (local.get $r0)))
      (if (i32.gt_s (local.get $rows) (local.get $chunk)) (then (local.set $rows (local.get $chunk))))
      (local.set $src (i32.add (local.get $in) (i32.mul (local.get $r0) (i32.shl (local.get $inw) (i32.const 2)))))
      (local.set $flip (i32.const 0))
      (local.set $i (i32.const 0))
      (block $steps_done (loop $step
        (br_if $steps_done (i32.ge_s (local.get $i) (local.get $steps)))
        (local.set $st (i32.add (i32.add (local.get $prog) (i32.const ${PROGRAM.headerBytes}))
          (i32.mul (local.get $i) (i32.const ${STEP.bytes}))))
        (local.set $dst (if (result i32) (i32.eq (local.get $i) (i32.sub (local.get $steps) (i32.const 1)))
          (then (i32.add (local.get $out) (i32.mul (local.get $r0) (i32.shl (local.get $outw) (i32.const 2)))))
          (else (i32.add (local.get $scratch) (i32.mul (local.get $flip) (local.get $bb))))))
        (local.set $n ${word('(local.get $st)', STEP.outFeatures)})
        (local.set $code ${word('(local.get $st)', STEP.activation)})
        (local.set $slope ${word('(local.get $st)', STEP.slope, 'f32')})
        (local.set $op ${word('(local.get $st)', STEP.op)})
        ;; ReLU and LeakyReLU are the GEMM's epilogue (slope 0 / the slope); the others run as a
        ;; pass over the stored chunk, after an identity epilogue (slope 1).
        (local.set $eslope (if (result f32) (i32.eq (local.get $code) (i32.const ${ACTIVATION_CODES.relu}))
          (then (f32.const 0))
          (else (if (result f32) (i32.eq (local.get $code) (i32.const ${ACTIVATION_CODES.leaky_relu}))
            (then (local.get $slope))
            (else (f32.const 1))))))
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
        ${elementwise ? elementwiseSteps : ''}
        ${parts.cnn ? cnnSteps : ''}
        ;; save_skip leaves the tensor where it is (it only keeps a copy).
        (if (i32.ne (local.get $op) (i32.const ${OP.save_skip})) (then
          (local.set $src (local.get $dst))
          (local.set $flip (i32.xor (local.get $flip) (i32.const 1)))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $step)))
      (local.set $r0 (i32.add (local.get $r0) (local.get $rows)))
      (br $chunks))))`;
}

/**
 * serve(control, program, input, output, scratch): a helper thread's loop. It announces itself
 * (state = ready), then sleeps on the sequence word; each increment asks it to run rows r0 … r1−1,
 * after which it sets done = 1 and wakes the caller. state = stopping ends the loop.
 */
const serve = `
  (func $serve (export "serve") (param $ctl i32) (param $prog i32) (param $in i32) (param $out i32)
      (param $scratch i32)
    (local $seen i32)
    (local.set $seen (i32.atomic.load offset=${CONTROL.seq * 4} (local.get $ctl)))
    (i32.atomic.store offset=${CONTROL.state * 4} (local.get $ctl) (i32.const ${HELPER_STATE.ready}))
    (drop (memory.atomic.notify offset=${CONTROL.state * 4} (local.get $ctl) (i32.const 1)))
    (loop $wait
      (drop (memory.atomic.wait32 offset=${CONTROL.seq * 4} (local.get $ctl) (local.get $seen) (i64.const -1)))
      (br_if $wait (i32.eq (i32.atomic.load offset=${CONTROL.seq * 4} (local.get $ctl)) (local.get $seen)))
      (local.set $seen (i32.atomic.load offset=${CONTROL.seq * 4} (local.get $ctl)))
      (if (i32.eq (i32.atomic.load offset=${CONTROL.state * 4} (local.get $ctl)) (i32.const ${HELPER_STATE.stopping}))
        (then (return)))
      (call $run (local.get $prog) (local.get $in) (local.get $out)
        (i32.atomic.load offset=${CONTROL.r0 * 4} (local.get $ctl))
        (i32.atomic.load offset=${CONTROL.r1 * 4} (local.get $ctl)) (local.get $scratch))
      (i32.atomic.store offset=${CONTROL.done * 4} (local.get $ctl) (i32.const 1))
      (drop (memory.atomic.notify offset=${CONTROL.done * 4} (local.get $ctl) (i32.const 1)))
      (br $wait)))`;

/** The interpreter (with the steps of `parts`) and the helpers' loop. */
export function programWat(parts: EngineParts = ALL_PARTS): string {
  return [runWat(parts), serve].join('\n');
}
