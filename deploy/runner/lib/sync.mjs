// Keeping the served tree in sync with the branch.
//
// Trees live in $WORKDIR/trees/<n>; $WORKDIR/repo is a symlink to the one being served. A commit
// that changes no dependency file is applied in place (`git reset --hard`, the dev server's own
// watcher reloads). A commit that changes package.json or a lockfile is checked out into a new
// tree and installed there while the current dev server keeps serving; only when that install
// succeeds is the old dev server stopped, the new one started from the new tree, and the old tree
// removed. Every fetch goes through one queue; requests that arrive while a fetch is waiting to
// start share it.

import fs from 'node:fs';
import path from 'node:path';

import { formatDuration } from './config.mjs';
import { DevServer } from './devserver.mjs';
import { changedPaths, fetchBranch, prepareTree, resetHard } from './git.mjs';
import { install, installFailureMessage } from './install.mjs';
import { dependenciesChanged, planTree } from './pkgmanager.mjs';

export const short = (sha) => (sha ? sha.slice(0, 12) : '?');

/** How long a new dev server gets to serve before syncs go on regardless. */
export const LISTEN_TIMEOUT_MS = 60_000;
/** SIGTERM → SIGKILL grace for the old dev server when a dependency change switches trees. */
export const SWITCH_KILL_GRACE_MS = 500;

/** Wait until `dev` serves (bounded) and log when it does not. */
export async function awaitServing(ctx, dev, timeoutMs = LISTEN_TIMEOUT_MS) {
  const ok = await dev.waitServing(timeoutMs);
  if (ctx.shuttingDown || ok || ctx.state.terminal) return;
  ctx.log.runner(`dev server is not serving on port ${ctx.cfg.devPort} after ${formatDuration(timeoutMs)}`);
}

/** $WORKDIR/trees/<n> */
export function treeDir(workdir, n) {
  return path.join(workdir, 'trees', String(n));
}

/** Atomically point $WORKDIR/repo at `dir` (relative symlink). */
export function pointRepoLink(workdir, dir) {
  const link = path.join(workdir, 'repo');
  const tmp = path.join(workdir, `.repo.${process.pid}.tmp`);
  fs.rmSync(tmp, { force: true });
  fs.symlinkSync(path.relative(workdir, dir), tmp);
  fs.renameSync(tmp, link);
}

/**
 * Detects a wall-clock jump (the machine was suspended and resumed): `check()` returns the gap
 * in ms since the previous check when it exceeds `thresholdMs`, else 0.
 */
export function makeJumpDetector(thresholdMs = 5_000, now = Date.now) {
  let last = now();
  return () => {
    const t = now();
    const gap = t - last;
    last = t;
    return gap > thresholdMs ? gap : 0;
  };
}

export class Syncer {
  /**
   * @param ctx runner context (cfg, log, procs, shuttingDown, ...)
   * @param {{ dir: string, sha: string, dev: DevServer, seq?: number }} served the tree being served
   */
  constructor(ctx, { dir, sha, dev, seq = 1 }) {
    this.ctx = ctx;
    this.served = { dir, sha };
    this.dev = dev;
    this.seq = seq;
    this.pending = null; // { sha, dir }: an install running in a second tree
    this.failed = null; // { sha, message }: last failed install, not retried for the same commit
    this.latest = sha; // newest commit fetched
    this.fetchFailures = 0;
    this.tail = Promise.resolve(); // the queue every fetch / switch runs on
    this.queued = null; // a sync waiting in the queue, shared by every request made meanwhile
    this.timers = [];
  }

  /** What `sync` reports: the full sha being served, and the one being installed, if any. */
  status() {
    const s = { ok: true, revision: this.served.sha };
    if (this.pending) s.installing = this.pending.sha;
    return s;
  }

  #serial(fn) {
    const run = this.tail.then(fn, fn);
    this.tail = run.catch(() => {});
    return run;
  }

  /**
   * Fetch now (unless a fetch is already waiting to start, which this request then shares) and
   * apply the result. Resolves to a sync reply: status() or { ok: false, error, message, revision }.
   */
  requestSync() {
    if (this.queued === null) {
      this.queued = this.#serial(async () => {
        this.queued = null;
        try {
          return await this.#syncOnce();
        } catch (e) {
          this.ctx.log.runner(`sync error: ${e.message}`);
          return { ok: false, error: 'internal', message: String(e.message), revision: this.served.sha };
        }
      });
    }
    return this.queued;
  }

  async #syncOnce() {
    const { ctx } = this;
    const log = ctx.log.runner;
    const served = this.served;
    if (ctx.shuttingDown) return { ok: false, error: 'stopping', message: 'the runner is stopping', revision: served.sha };

    const fetched = await fetchBranch(ctx, served.dir);
    if (fetched.error) {
      this.fetchFailures += 1;
      if (this.fetchFailures === 1 || this.fetchFailures % 60 === 0) {
        log(`fetch failed (${this.fetchFailures}x): ${fetched.error}`);
      }
      return { ok: false, error: 'fetch_failed', message: fetched.error, revision: served.sha };
    }
    if (this.fetchFailures > 0) log('fetch recovered');
    this.fetchFailures = 0;
    const next = fetched.sha;
    this.latest = next;
    // An install for a dependency change is running: it is switched to when done, then the
    // latest commit is caught up with.
    if (this.pending || next === served.sha || ctx.shuttingDown) return this.status();

    const changed = await changedPaths(ctx, served.dir, served.sha, next);
    if (changed !== null && !dependenciesChanged(changed)) {
      const why = await resetHard(ctx, served.dir, next);
      if (why !== null) {
        log(`reset to ${short(next)} failed: ${why}`);
        return { ok: false, error: 'reset_failed', message: why, revision: served.sha };
      }
      log(`updated ${short(served.sha)} -> ${short(next)}`);
      served.sha = next;
      ctx.state.revision = next;
      this.failed = null;
      ctx.log.git(`serving ${short(next)}`);
      this.dev.resetFailures();
      if (!this.dev.running) {
        const cannot = this.dev.start();
        if (cannot) log(`cannot start dev server: ${cannot}; waiting for the next commit`);
      }
      return this.status();
    }

    if (this.failed && this.failed.sha === next) {
      return { ok: false, error: 'install_failed', message: this.failed.message, revision: served.sha };
    }
    this.seq += 1;
    const dir = treeDir(ctx.cfg.workdir, this.seq);
    log(
      `dependency files changed: installing ${short(next)} in ${dir} while ${short(served.sha)} keeps serving`,
    );
    const why = await prepareTree(ctx, served.dir, dir, next);
    if (why !== null) return this.#installFailed({ sha: next, dir }, `could not check out: ${why}`);
    this.pending = { sha: next, dir };
    this.#installAndSwitch(this.pending).catch((e) => ctx.fatal(1, `unexpected error: ${e.message}`));
    return this.status();
  }

  #installFailed(p, message) {
    this.ctx.log.runner(`install failed for ${short(p.sha)}: ${message}; still serving ${short(this.served.sha)}`);
    this.failed = { sha: p.sha, message };
    fs.promises.rm(p.dir, { recursive: true, force: true }).catch(() => {});
    return { ok: false, error: 'install_failed', message, revision: this.served.sha };
  }

  async #installAndSwitch(p) {
    const { ctx } = this;
    const plan = planTree(p.dir, ctx.cfg);
    const result = plan.error ? { ok: false, reason: plan.error } : await install(ctx, plan);
    if (ctx.shuttingDown) return;
    if (!result.ok) {
      this.pending = null;
      this.#installFailed(p, installFailureMessage(result).replace(/^install failed: /, ''));
    } else {
      await this.#serial(() => this.#switchTo(p));
    }
    // Commits fetched during the install are applied now.
    if (!ctx.shuttingDown && this.latest !== p.sha) this.requestSync();
  }

  async #switchTo(p) {
    const { ctx } = this;
    if (ctx.shuttingDown) return;
    const old = this.served;
    ctx.log.runner(`dependencies of ${short(p.sha)} installed: switching the dev server to ${p.dir}`);
    // The old tree is deleted after the switch, so its server has nothing to save: a short
    // grace before SIGKILL keeps the switch (the downtime) short.
    ctx.state.set('restarting', `switching the dev server to ${short(p.sha)} (its dependencies changed)`);
    await this.dev.stop(SWITCH_KILL_GRACE_MS);
    if (ctx.shuttingDown) return;
    pointRepoLink(ctx.cfg.workdir, p.dir);
    this.served = { dir: p.dir, sha: p.sha };
    ctx.state.revision = p.sha;
    ctx.state.clearLines('dev');
    this.pending = null;
    this.failed = null;
    this.dev = new DevServer(ctx, p.dir);
    ctx.log.git(`serving ${short(p.sha)}`);
    const cannot = this.dev.start();
    if (cannot) ctx.log.runner(`cannot start dev server: ${cannot}; waiting for the next commit`);
    // Syncs (and their replies) wait until the new dev server answers, so "revision" is served.
    else await awaitServing(ctx, this.dev);
    // The old tree goes only now: deleting a large node_modules competes for disk and CPU with
    // the new dev server's start, which is the downtime of the switch.
    fs.promises.rm(old.dir, { recursive: true, force: true }).catch((e) => {
      ctx.log.runner(`could not remove ${old.dir}: ${e.code ?? e.message}`);
    });
  }

  /** Periodic fetch every SYNC_INTERVAL (fixed rate) and an immediate one after a clock jump. */
  start() {
    const { ctx } = this;
    const interval = ctx.cfg.syncIntervalMs;
    const tick = async () => {
      if (ctx.shuttingDown) return;
      const started = Date.now();
      await this.requestSync();
      if (ctx.shuttingDown) return;
      this.timers[0] = setTimeout(tick, Math.max(0, interval - (Date.now() - started)));
    };
    this.timers[0] = setTimeout(tick, interval);
    const jumped = makeJumpDetector(5_000);
    this.timers[1] = setInterval(() => {
      const gap = jumped();
      if (gap > 0 && !ctx.shuttingDown) {
        ctx.log.runner(`clock jumped ${formatDuration(Math.round(gap / 1000) * 1000)} (machine resumed?): fetching now`);
        this.requestSync();
      }
    }, 1_000);
  }

  stop() {
    clearTimeout(this.timers[0]);
    clearInterval(this.timers[1]);
  }
}
