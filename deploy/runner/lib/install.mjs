// Dependency install of one tree, bounded by INSTALL_TIMEOUT.

import { formatDuration } from './config.mjs';
import { childEnv } from './pkgmanager.mjs';
import { describeExit, waitExit } from './procgroup.mjs';

/**
 * Run `plan.install` in `dir` (see planTree). Resolves to { ok: true } or
 * { ok: false, timedOut, reason } with a one-line reason. A stuck install's whole process group
 * is killed when INSTALL_TIMEOUT expires.
 */
export async function install(ctx, dir, plan) {
  const { cfg } = ctx;
  const argv = plan.install;
  ctx.log.runner(`installing dependencies: ${argv.join(' ')}`);
  const child = ctx.procs.spawnPrefixed(argv, { cwd: dir, env: childEnv(ctx.env, cfg.port), prefix: '[install]' });
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    if (child.pid !== undefined) ctx.procs.kill(child.pid, 2_000);
  }, cfg.installTimeoutMs);
  const result = await waitExit(child);
  clearTimeout(timer);
  if (child.pid !== undefined) await ctx.procs.kill(child.pid, 1_000); // reap stragglers of the install tree
  if (timedOut) {
    return { ok: false, timedOut: true, reason: `install timed out after ${formatDuration(cfg.installTimeoutMs)} (INSTALL_TIMEOUT)` };
  }
  if (result.code === 0) return { ok: true };
  const shown = argv.slice(0, argv[0] === 'corepack' ? 3 : 2).join(' ');
  return { ok: false, timedOut: false, reason: `${shown} ${describeExit(result)}` };
}
