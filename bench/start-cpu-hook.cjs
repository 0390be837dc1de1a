// `NODE_OPTIONS="--require ./bench/start-cpu-hook.cjs" PORT=8099 npm start`: each process of the
// server writes `@@ {what, pid, worker, ms, cpu}` to stderr when the primary forks a worker and
// when a process's HTTP server on PORT listens: `ms` since the process started, `cpu` its user +
// system CPU time so far (process.cpuUsage). Used for the start-up figures of README "Build once":
// CPU time is what a loaded machine inflates least.
const cluster = require('node:cluster');
const net = require('node:net');
const { writeSync } = require('node:fs');

const port = Number(process.env.PORT);
const report = (what) => {
  const { user, system } = process.cpuUsage();
  const line = {
    what,
    pid: process.pid,
    worker: cluster.isWorker,
    ms: Math.round(performance.now()),
    cpu: Math.round((user + system) / 1000),
  };
  writeSync(2, `@@ ${JSON.stringify(line)}\n`);
};
const listen = net.Server.prototype.listen;
net.Server.prototype.listen = function (...args) {
  this.once('listening', () => {
    if (this.address()?.port === port) report('listening');
  });
  return listen.apply(this, args);
};
const fork = cluster.fork;
cluster.fork = function (...args) {
  report('fork');
  return fork.apply(this, args);
};
