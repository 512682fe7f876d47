// Dependency install of one tree, bounded by INSTALL_TIMEOUT; a failure names its cause.

import { installFailureCause } from './causes.mjs';
import { formatDuration } from './config.mjs';
import { cleanLine } from './log.mjs';
import { childEnv } from './pkgmanager.mjs';
import { describeExit, waitExit } from './procgroup.mjs';

/** Output lines of an install kept to find the cause of a failure. */
const KEPT_LINES = 300;

/**
 * Run `plan.install` in `plan.installDir` (see planTree). Resolves to { ok: true } or
 * { ok: false, timedOut, reason, cause } with one-line reason (what exited how) and cause (why,
 * from the output, or null). A stuck install's whole process group is killed when
 * INSTALL_TIMEOUT expires.
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
  const child = ctx.procs.spawnPrefixed(argv, { cwd: plan.installDir, env: childEnv(ctx.env, cfg.devPort), prefix: '[install]', onLine });
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    if (child.pid !== undefined) ctx.procs.kill(child.pid, 2_000);
  }, cfg.installTimeoutMs);
  const result = await waitExit(child);
  clearTimeout(timer);
  if (child.pid !== undefined) await ctx.procs.kill(child.pid, 1_000); // reap stragglers of the install tree
  if (timedOut) {
    return { ok: false, timedOut: true, reason: `install timed out after ${formatDuration(cfg.installTimeoutMs)} (INSTALL_TIMEOUT)`, cause: null };
  }
  if (result.code === 0) return { ok: true };
  const shown = argv.slice(0, argv[0] === 'corepack' ? 3 : 2).join(' ');
  const cause = installFailureCause(lines.map((l) => ctx.redact(l)), plan.pm);
  return { ok: false, timedOut: false, reason: `${shown} ${describeExit(result)}`, cause };
}

/** The one sentence of a failed install: its cause when known, else what exited how. */
export function installFailureMessage(result) {
  if (result.timedOut) return result.reason;
  return result.cause ? `install failed: ${result.cause} (${result.reason})` : `install failed: ${result.reason}`;
}
