// The dev server of one tree: start, restart with backoff, give up when it keeps dying at start.

import net from 'node:net';

import { EXIT_DEV_CRASHLOOP } from './exitcodes.mjs';
import { childEnv, planTree } from './pkgmanager.mjs';
import { describeExit, sleep, waitExit } from './procgroup.mjs';

/** A dev server that exits within this long after starting counts as "dying at start". */
export const QUICK_EXIT_MS = 10_000;
/** Consecutive quick exits before the runner gives up. */
export const MAX_QUICK_EXITS = 5;
/** Restart backoff: 500ms, 1s, 2s, 4s, ... capped. */
const BACKOFF_BASE_MS = 500;
const BACKOFF_MAX_MS = 8_000;

/** True when something accepts TCP connections on 127.0.0.1:port. */
function canConnect(port) {
  return new Promise((resolve) => {
    const s = net.createConnection({ host: '127.0.0.1', port });
    const done = (ok) => {
      s.destroy();
      resolve(ok);
    };
    s.setTimeout(1_000, () => done(false));
    s.once('connect', () => done(true));
    s.once('error', () => done(false));
  });
}

export class DevServer {
  constructor(ctx, dir) {
    this.ctx = ctx;
    this.dir = dir;
    this.child = null;
    this.wanted = false;
    this.startedAt = 0;
    this.quickExits = 0;
    this.timer = null;
  }

  get running() {
    return this.child !== null;
  }

  /** Start (or restart) the dev server; returns null or a one-line reason it cannot run. */
  start() {
    const { ctx } = this;
    clearTimeout(this.timer);
    this.timer = null;
    if (this.child !== null || ctx.shuttingDown) return null;
    const plan = planTree(this.dir, ctx.cfg.port);
    if (plan.error) return plan.error;
    this.wanted = true;
    ctx.log.runner(`starting dev server on 0.0.0.0:${ctx.cfg.port}: ${plan.dev.argv.join(' ')}`);
    const child = ctx.procs.spawnPrefixed(plan.dev.argv, {
      cwd: this.dir,
      env: childEnv(ctx.env, ctx.cfg.port),
      prefix: '[dev]',
    });
    this.child = child;
    this.startedAt = Date.now();
    waitExit(child)
      .then((result) => this.onExit(child, result))
      .catch((e) => ctx.fatal(1, `unexpected error: ${e.message}`));
    return null;
  }

  async onExit(child, result) {
    const { ctx } = this;
    if (this.child !== child) return; // stopped on purpose
    this.child = null;
    if (child.pid !== undefined) await ctx.procs.kill(child.pid, 1_000); // take down whatever the script left behind
    if (!this.wanted || ctx.shuttingDown || this.child !== null) return;
    const ranMs = Date.now() - this.startedAt;
    this.quickExits = ranMs >= QUICK_EXIT_MS ? 1 : this.quickExits + 1;
    if (this.quickExits >= MAX_QUICK_EXITS) {
      ctx.fatal(
        EXIT_DEV_CRASHLOOP,
        `dev server keeps exiting at start (${this.quickExits} times in a row, last ${describeExit(result)}); giving up`,
      );
      return;
    }
    const delay = Math.min(BACKOFF_BASE_MS * 2 ** (this.quickExits - 1), BACKOFF_MAX_MS);
    ctx.log.runner(`dev server ${describeExit(result)}; restarting in ${delay}ms`);
    this.timer = setTimeout(() => {
      const why = this.start();
      if (why) ctx.log.runner(`cannot start dev server: ${why}; waiting for the next commit`);
    }, delay);
  }

  /** Stop the dev server's process group: SIGTERM, SIGKILL after `graceMs` (default 5s). */
  async stop(graceMs = undefined) {
    this.wanted = false;
    clearTimeout(this.timer);
    this.timer = null;
    const child = this.child;
    this.child = null;
    if (child) {
      this.ctx.log.runner('stopping dev server');
      if (child.pid !== undefined) await this.ctx.procs.kill(child.pid, graceMs);
    }
  }

  /**
   * Resolves true once the dev server accepts connections on 127.0.0.1:PORT; false when
   * `timeoutMs` passes or the runner stops first.
   */
  async waitListening(timeoutMs) {
    const deadline = Date.now() + timeoutMs;
    while (!this.ctx.shuttingDown && Date.now() < deadline) {
      if (this.child !== null && (await canConnect(this.ctx.cfg.port))) return true;
      await sleep(100);
    }
    return false;
  }

  /** A new commit arrived: forget earlier crashes. */
  resetFailures() {
    this.quickExits = 0;
  }
}
