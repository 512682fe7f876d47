// Dependency install of one tree, bounded by INSTALL_TIMEOUT (extended while the install keeps
// using CPU, up to 6 × INSTALL_TIMEOUT); a failure names its cause.

import fs from 'node:fs';
import path from 'node:path';

import { installFailureCause, scopedDependencies } from './causes.mjs';
import { formatDuration } from './config.mjs';
import { cleanLine } from './log.mjs';
import { npmAuth } from './npmauth.mjs';
import { childEnv } from './pkgmanager.mjs';
import { describeExit, waitExit } from './procgroup.mjs';

/** Output lines of an install kept to find the cause of a failure. */
const KEPT_LINES = 300;
/** An install is extended by another INSTALL_TIMEOUT at most this many times while it progresses. */
export const MAX_EXTENSIONS = 5;

/**
 * Whether an install that used `cpuSeconds` of CPU (its whole process group) during the last
 * window of `windowMs` is still making progress: at least 1 % of the window and at least 2 s.
 * A stuck install (a registry that never answers, a script that waits) uses next to nothing; a
 * slow one on a shared vCPU at its 6.25 % baseline uses about 19 s per 5 minutes.
 */
export function progressing(cpuSeconds, windowMs) {
  return cpuSeconds >= Math.max(2, (windowMs / 1000) * 0.01);
}

/** CPU seconds (user + system, with reaped children) of the processes in group `pgid`, from /proc. */
export function groupCpuSeconds(pgid, procDir = '/proc') {
  let ticks = 0;
  let names = [];
  try {
    names = fs.readdirSync(procDir).filter((n) => /^\d+$/.test(n));
  } catch {
    return 0;
  }
  for (const n of names) {
    try {
      const f = fs.readFileSync(path.join(procDir, n, 'stat'), 'utf8').split(') ').pop().split(' ');
      if (Number(f[2]) === pgid) ticks += Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14]);
    } catch {
      // the process ended
    }
  }
  return ticks / 100; // USER_HZ is 100 on Linux
}

/**
 * Calls `onTimeout` once the install makes no progress during a whole INSTALL_TIMEOUT window
 * (or after MAX_EXTENSIONS extensions); logs each extension. Returns { stop, windows }.
 */
function watchProgress(ctx, child, windowMs, onTimeout) {
  const w = { timer: null, windows: 1, lastCpu: 0 };
  const check = () => {
    const cpu = child.pid === undefined ? 0 : groupCpuSeconds(child.pid);
    const used = cpu - w.lastCpu;
    w.lastCpu = cpu;
    if (w.windows > MAX_EXTENSIONS || !progressing(used, windowMs)) {
      onTimeout(w.windows);
      return;
    }
    w.windows += 1;
    ctx.log.runner(`install still progressing after ${formatDuration((w.windows - 1) * windowMs)} (${used.toFixed(1)} CPU-s in the last ${formatDuration(windowMs)}): INSTALL_TIMEOUT extended to ${formatDuration(w.windows * windowMs)}`);
    w.timer = setTimeout(check, windowMs);
  };
  w.timer = setTimeout(check, windowMs);
  return { stop: () => clearTimeout(w.timer), windows: () => w.windows };
}

/**
 * Run `plan.install` in `plan.installDir` (see planTree). Resolves to { ok: true, seconds } (also logged) or
 * { ok: false, timedOut, reason, cause } with one-line reason (what exited how) and cause (why,
 * from the output, or null). A stuck install's whole process group is killed when a window of
 * INSTALL_TIMEOUT passes without progress (watchProgress).
 */
export async function install(ctx, plan) {
  const { cfg } = ctx;
  const argv = plan.install;
  const lines = [];
  const onLine = (line) => {
    lines.push(cleanLine(line));
    if (lines.length > KEPT_LINES) lines.shift();
  };
  ctx.log.runner(`installing dependencies: ${argv.join(' ')}`);
  const auth = npmAuth(ctx.env, [plan.installDir, plan.dev?.cwd ?? plan.installDir]);
  // NPM_TOKEN stays in the install's environment (an .npmrc of the project may name ${NPM_TOKEN});
  // the dev server's never has it.
  const token = ctx.env.NPM_TOKEN ? { NPM_TOKEN: ctx.env.NPM_TOKEN } : {};
  const env = { ...childEnv(ctx.env, cfg.devPort), ...token, ...auth.env };
  let child;
  try {
    child = ctx.procs.spawnPrefixed(argv, { cwd: plan.installDir, env, prefix: '[install]', onLine });
  } catch (e) {
    auth.cleanup();
    throw e;
  }
  let timedOut = false;
  const started = Date.now();
  const watch = watchProgress(ctx, child, cfg.installTimeoutMs, () => {
    timedOut = true;
    if (child.pid !== undefined) ctx.procs.kill(child.pid, 2_000);
  });
  const result = await waitExit(child);
  watch.stop();
  if (child.pid !== undefined) await ctx.procs.kill(child.pid, 1_000); // reap stragglers of the install tree
  auth.cleanup();
  if (timedOut) {
    return { ok: false, timedOut: true, reason: timeoutReason(cfg.installTimeoutMs, watch.windows()), cause: null };
  }
  if (result.code === 0) {
    const seconds = (Date.now() - started) / 1000;
    ctx.log.runner(`dependencies installed in ${seconds.toFixed(1)}s (${argv.slice(0, 2).join(' ')})`);
    return { ok: true, seconds };
  }
  const shown = argv.slice(0, argv[0] === 'corepack' ? 3 : 2).join(' ');
  const hints = { npmToken: Boolean(ctx.env.NPM_TOKEN), scopedDeps: scopedDependencies(plan.pkg) };
  const cause = installFailureCause(lines.map((l) => ctx.redact(l)), plan.pm, hints);
  return { ok: false, timedOut: false, reason: `${shown} ${describeExit(result)}`, cause };
}

/** Why an install was killed: no progress in its first window, in a later one, or the cap. */
export function timeoutReason(windowMs, windows) {
  if (windows === 1) return `install timed out after ${formatDuration(windowMs)} (INSTALL_TIMEOUT)`;
  const total = formatDuration(windows * windowMs);
  return windows > MAX_EXTENSIONS
    ? `install timed out after ${total} (at most ${MAX_EXTENSIONS + 1} × INSTALL_TIMEOUT)`
    : `install timed out after ${total}: no progress in the last ${formatDuration(windowMs)} (INSTALL_TIMEOUT)`;
}

/** The one sentence of a failed install: its cause when known, else what exited how. */
export function installFailureMessage(result) {
  if (result.timedOut) return result.reason;
  return result.cause ? `install failed: ${result.cause} (${result.reason})` : `install failed: ${result.reason}`;
}
