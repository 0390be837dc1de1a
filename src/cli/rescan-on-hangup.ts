/**
 * SIGHUP: scan the model repository now — a daemon's "reload", the signal systemd's
 * `ExecReload=/bin/kill -HUP $MAINPID` sends. What another server or `npm run recalibrate`
 * published, activated or deleted is served without waiting for MODEL_POLL_INTERVAL_MS (or with
 * polling off), and a version this process failed to read (an EMFILE, an unreachable mount: its
 * files unchanged) is read again now rather than when its retry is due — the highest four of
 * each model (ModelRegistry.refresh's `all`). Nothing else is reloaded: the configuration is read
 * once, at start.
 *
 * The other signals close-with-grace listens to by default are left to Node's own handling
 * (server-worker.ts skips them): under its defaults a SIGHUP, SIGUSR2 or SIGQUIT drained and
 * stopped a server — or one worker, which its primary then counted as a death — with exit code 0,
 * which a `Restart=on-failure` supervisor does not restart. SIGTERM and SIGINT are lame-duck.ts's.
 */
import type { Log, ModelRegistry } from '../service/index.js';

export const RESCAN_SIGNAL = 'SIGHUP';

/** Listens for SIGHUP in this process: each one starts a scan (concurrent ones share it). */
export function rescanOnHangup(registry: Pick<ModelRegistry, 'refresh'>, logger: Log): () => void {
  const onHangup = () => {
    logger.info({ signal: RESCAN_SIGNAL }, 'scanning the model repository now');
    registry
      .refresh('all')
      .catch((e: unknown) => logger.error({ err: e }, 'repository scan failed'));
  };
  process.on(RESCAN_SIGNAL, onHangup);
  return () => process.off(RESCAN_SIGNAL, onHangup);
}
