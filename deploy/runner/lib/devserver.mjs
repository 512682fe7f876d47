// The dev server of one tree, supervised: started on DEV_PORT with the arguments its framework
// needs, probed over HTTP (readiness at start, liveness while serving), restarted with backoff
// when it exits or stops answering, and declared a crash loop when that keeps happening.

import path from 'node:path';

import { formatDuration } from './config.mjs';
import { EXIT_CRASHLOOP, EXIT_DEV_CRASHLOOP } from './exitcodes.mjs';
import { childEnv, planTree } from './pkgmanager.mjs';
import { groupCpuTicks, isLoopback, nonLoopbackAddress, probe, probeDev } from './probe.mjs';
import { describeExit, sleep, waitExit } from './procgroup.mjs';

/**
 * Liveness: a probe every 3 s while serving; 3 misses in a row (no HTTP answer within 3 s, and
 * no CPU used by its process group meanwhile: a compiling server is busy, not hung) = not
 * answering.
 */
export const PROBE_INTERVAL_MS = 3_000;
export const LIVENESS_TIMEOUT_MS = 3_000;
export const MISSES_TO_RESTART = 3;
/** Readiness at start: a probe every 300 ms, each waiting up to 60 s (a first compile answers late). */
export const START_PROBE_INTERVAL_MS = 300;
export const START_PROBE_TIMEOUT_MS = 60_000;
/**
 * A dev server with no HTTP answer at all this long after its start: before the preview ever
 * served, the runner gives up at once (exit 5; restarting rarely makes it listen on DEV_PORT),
 * afterwards it counts as a failure.
 */
export const START_DEADLINE_MS = 5 * 60_000;
/** Failures in a row, before the preview ever served, after which the runner gives up (exit 5). */
export const MAX_START_FAILURES = 5;
/** K failures within the window, after it once served, make a crash loop (exit 7). */
export const CRASHLOOP_FAILURES = 5;
export const CRASHLOOP_WINDOW_MS = 120_000;
/** Restart backoff: 1 s, 2 s, 4 s, ... capped. */
const BACKOFF_BASE_MS = 1_000;
const BACKOFF_MAX_MS = 30_000;

export function backoffMs(failures) {
  return Math.min(BACKOFF_BASE_MS * 2 ** Math.max(0, failures - 1), BACKOFF_MAX_MS);
}

export class DevServer {
  constructor(ctx, dir) {
    this.ctx = ctx;
    this.dir = dir;
    this.child = null;
    this.wanted = false;
    this.serving = false; // answered (not 5xx) since its last start
    this.startedAt = 0;
    this.startFailures = 0;
    this.timer = null;
    this.hungReason = null;
    this.saidLoopback = false;
    this.said5xx = false;
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
    const plan = planTree(this.dir, ctx.cfg);
    if (plan.error) return plan.error;
    const { dev } = plan;
    this.wanted = true;
    const where = dev.cwd === this.dir ? '' : ` in ${path.relative(this.dir, dev.cwd)}`;
    const via = dev.delegatedTo ? ` (the ${plan.dev.script} script of workspace ${dev.delegatedTo})` : '';
    ctx.log.runner(`starting dev server on port ${ctx.cfg.devPort}${where}${via}: ${dev.argv.join(' ')}`);
    if (ctx.state.phase !== 'restarting') ctx.state.set('starting', `starting the dev server (${dev.argv.join(' ')})`);
    const child = ctx.procs.spawnPrefixed(dev.argv, {
      cwd: dev.cwd,
      env: childEnv(ctx.env, ctx.cfg.devPort),
      prefix: '[dev]',
    });
    this.child = child;
    this.serving = false;
    this.said5xx = false;
    this.startedAt = Date.now();
    waitExit(child)
      .then((result) => this.#onExit(child, result))
      .catch((e) => ctx.fatal(1, `unexpected error: ${e.message}`));
    this.#watch(child).catch((e) => ctx.fatal(1, `unexpected error: ${e.message}`));
    return null;
  }

  async #watch(child) {
    const { ctx } = this;
    const port = ctx.cfg.devPort;
    let misses = 0;
    let answered = false;
    let cpu = null;
    while (this.child === child && !ctx.shuttingDown) {
      const began = Date.now();
      const serving = this.serving;
      const recent = serving && Date.now() - (ctx.lastUpstreamAt ?? 0) < PROBE_INTERVAL_MS;
      const r = recent ? { status: 200 } : await probeDev(ctx.devHost, port, serving ? LIVENESS_TIMEOUT_MS : START_PROBE_TIMEOUT_MS);
      if (this.child !== child || ctx.shuttingDown) return;
      if (r.status !== undefined) {
        misses = 0;
        answered = true;
        if (r.host) ctx.devHost = r.host;
        if (!serving) await this.#answered(r);
      } else if (serving) {
        const now = r.error === 'timeout' && child.pid !== undefined ? groupCpuTicks(child.pid) : null;
        const busy = now !== null && cpu !== null && now > cpu;
        cpu = now;
        misses = busy ? 0 : misses + 1;
        if (misses >= MISSES_TO_RESTART) {
          this.#hung(child, `stopped answering HTTP on port ${port} (${misses} probes in a row: ${r.error})`);
          return;
        }
      } else if (!answered && Date.now() - this.startedAt > START_DEADLINE_MS) {
        this.#neverAnswered(child);
        return;
      }
      const interval = this.serving ? PROBE_INTERVAL_MS : START_PROBE_INTERVAL_MS;
      await sleep(Math.max(0, interval - (Date.now() - began)));
    }
  }

  async #answered(r) {
    const { ctx } = this;
    const port = ctx.cfg.devPort;
    if (r.status >= 500) {
      if (!this.said5xx) ctx.log.runner(`dev server answers HTTP ${r.status} on port ${port}; waiting for a page that is not an error`);
      this.said5xx = true;
      const phase = ctx.state.phase === 'restarting' ? 'restarting' : 'starting';
      ctx.state.set(phase, `the dev server answers HTTP ${r.status} (an error page); waiting until it serves the app`);
      return;
    }
    this.serving = true;
    this.startFailures = 0;
    ctx.everServed = true;
    const took = ((Date.now() - this.startedAt) / 1000).toFixed(1);
    ctx.log.runner(`dev server is serving: HTTP ${r.status} from ${r.host}:${port} after ${took}s`);
    ctx.state.set('serving', `the dev server answers on port ${port}`);
    if (isLoopback(r.host) && !this.saidLoopback) await this.#checkReachable(r.host);
  }

  /** One line when the dev server listens on loopback only (Fly's proxy could not reach it directly). */
  async #checkReachable(host) {
    this.saidLoopback = true;
    const outside = nonLoopbackAddress();
    if (outside === null) return;
    const r = await probe(outside, this.ctx.cfg.devPort, 2_000);
    if (r.error !== 'ECONNREFUSED') return;
    this.ctx.log.runner(
      `the dev server listens on ${host}:${this.ctx.cfg.devPort} only (loopback): the runner's proxy reaches it there, ` +
        'but nothing outside the machine could; to fix, listen on 0.0.0.0 (process.env.HOST, or --host 0.0.0.0)',
    );
  }

  #neverAnswered(child) {
    const { ctx } = this;
    const why = `did not answer HTTP on port ${ctx.cfg.devPort} within ${formatDuration(START_DEADLINE_MS)} of its start`;
    if (ctx.everServed) {
      this.#hung(child, why);
      return;
    }
    this.wanted = false;
    ctx.terminal(EXIT_DEV_CRASHLOOP, 'crashloop', `dev server ${why} (it must listen on process.env.PORT); giving up`);
    if (child.pid !== undefined) ctx.procs.kill(child.pid, 1_000);
  }

  #hung(child, why) {
    this.hungReason = why;
    this.ctx.log.runner(`dev server ${why}; killing it`);
    if (child.pid !== undefined) this.ctx.procs.kill(child.pid, 1_000);
  }

  async #onExit(child, result) {
    const { ctx } = this;
    if (this.child !== child) return; // stopped on purpose
    this.child = null;
    this.serving = false;
    if (child.pid !== undefined) await ctx.procs.kill(child.pid, 1_000); // take down whatever the script left behind
    if (!this.wanted || ctx.shuttingDown || this.child !== null) return;
    const why = this.hungReason ?? describeExit(result) + this.#portHint();
    this.hungReason = null;
    this.#failed(why);
  }

  /** When the dev server died of EADDRINUSE on the runner's own PORT: what to change. */
  #portHint() {
    const { port } = this.ctx.cfg;
    const clash = this.ctx.state.buffers.dev.some((l) => l.includes('EADDRINUSE') && new RegExp(`:${port}\\b`).test(l));
    return clash ? ` (port ${port} is the runner's: the app must listen on process.env.PORT, which is ${this.ctx.cfg.devPort})` : '';
  }

  /** Count a failure; restart after a backoff, or declare the terminal phase. */
  #failed(why) {
    const { ctx } = this;
    let n;
    if (!ctx.everServed) {
      this.startFailures += 1;
      n = this.startFailures;
      if (n >= MAX_START_FAILURES) {
        ctx.terminal(EXIT_DEV_CRASHLOOP, 'crashloop', `dev server keeps exiting at start (${n} times in a row, last ${why}); giving up`);
        return;
      }
    } else {
      const now = Date.now();
      ctx.failures = (ctx.failures ?? []).filter((t) => now - t < CRASHLOOP_WINDOW_MS).concat(now);
      n = ctx.failures.length;
      if (n >= CRASHLOOP_FAILURES) {
        ctx.terminal(
          EXIT_CRASHLOOP,
          'crashloop',
          `dev server failed ${n} times within ${formatDuration(CRASHLOOP_WINDOW_MS)} (last: ${why}); giving up`,
        );
        return;
      }
    }
    const delay = backoffMs(n);
    ctx.state.restarts += 1;
    ctx.log.runner(`dev server ${why}; restarting in ${formatDuration(delay)}`);
    ctx.state.set('restarting', `the dev server ${why}; restarting in ${formatDuration(delay)}`);
    this.timer = setTimeout(() => {
      const cannot = this.start();
      if (cannot) ctx.log.runner(`cannot start dev server: ${cannot}; waiting for the next commit`);
    }, delay);
  }

  /** Stop the dev server's process group: SIGTERM, SIGKILL after `graceMs` (default 5s). */
  async stop(graceMs = undefined) {
    this.wanted = false;
    clearTimeout(this.timer);
    this.timer = null;
    const child = this.child;
    this.child = null;
    this.serving = false;
    if (child) {
      this.ctx.log.runner('stopping dev server');
      if (child.pid !== undefined) await this.ctx.procs.kill(child.pid, graceMs);
    }
  }

  /** Resolves true once the dev server serves; false on timeout, a terminal phase or shutdown. */
  async waitServing(timeoutMs) {
    const deadline = Date.now() + timeoutMs;
    while (!this.ctx.shuttingDown && !this.ctx.state.terminal && Date.now() < deadline) {
      if (this.serving) return true;
      await this.ctx.state.changed(Math.min(250, deadline - Date.now()));
    }
    return this.serving;
  }

  /** A new commit arrived: forget earlier failures, and a crash loop that is still lingering. */
  resetFailures() {
    this.startFailures = 0;
    this.ctx.failures = [];
    if (this.ctx.state.phase === 'crashloop' && this.ctx.cancelLinger()) {
      this.ctx.log.runner('a new commit arrived during the crash loop: starting the dev server again');
      this.ctx.state.set('restarting', 'a new commit arrived: starting the dev server again');
    }
  }
}
