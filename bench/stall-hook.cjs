// `node --require ./bench/stall-hook.cjs …` with STALL_LOG=<file>: every turn of the event loop
// that holds it more than 4 ms is appended to the file as `<end, Date.now() ms> <wall ms> <cpu ms>
// <pid>`: a 1 ms timer measures how late it fires; `cpu` is the process's CPU time over the same
// stretch (process.cpuUsage, all threads: with no helper thread, the event loop's), which a busy
// machine inflates less than wall time. Used by bench/recalibration-stall.ts.
const { openSync, writeSync } = require('node:fs');

const file = process.env.STALL_LOG;
if (file) {
  const fd = openSync(file, 'a');
  let last = performance.now();
  let lastCpu = process.cpuUsage();
  const tick = () => {
    const now = performance.now();
    const cpu = process.cpuUsage();
    const wall = now - last - 1;
    if (wall > 4) {
      const cpuMs = (cpu.user + cpu.system - lastCpu.user - lastCpu.system) / 1000;
      writeSync(fd, `${Date.now()} ${wall.toFixed(1)} ${cpuMs.toFixed(1)} ${process.pid}\n`);
    }
    last = now;
    lastCpu = cpu;
    setTimeout(tick, 1).unref();
  };
  setTimeout(tick, 1).unref();
}
