// Lifecycle of the runner: the context object every module receives, startup, fatal exits and
// signals.

import fs from 'node:fs';
import path from 'node:path';

import { DEFAULT_FAILURE_LINGER, InputError, formatDuration, parseDuration, parsePort, readConfig } from './config.mjs';
import { startControlServer, stopControlServer } from './control.mjs';
import { DevServer } from './devserver.mjs';
import {
  EXIT_CLONE,
  EXIT_INSTALL,
  EXIT_INSTALL_TIMEOUT,
  EXIT_INTERNAL,
  EXIT_INVALID,
  EXIT_STOPPED,
} from './exitcodes.mjs';
import { clone, effectiveBase, gitEnvFor, resetHard, revParse } from './git.mjs';
import { install, installFailureMessage } from './install.mjs';
import { SECRET_ENV, createLogger, makeRedactor } from './log.mjs';
import { planTree } from './pkgmanager.mjs';
import { adoptPrebuilt, findPrebuilt } from './prebuilt.mjs';
import { ProcessGroups } from './procgroup.mjs';
import { startFrontProxy, stopFrontProxy } from './proxy.mjs';
import { PreviewState } from './state.mjs';
import { Syncer, awaitServing, pointRepoLink, short, treeDir } from './sync.mjs';

/** How long a sync reply waits, after the sync settled, for the dev server to serve or fail. */
export const SYNC_SETTLE_MS = 5_000;

/**
 * The state of one runner, passed to every module instead of module-level globals.
 *   env          environment of the runner (GIT_TOKEN is deleted from it once read)
 *   stdout/err   where logs go
 *   exit(code)   how the process ends
 *   cfg          validated configuration (readConfig), null until read
 *   redact(s)    removes secrets (every form of the token, NPM_TOKEN, credentials in URLs, ...)
 *   state        PreviewState: phase, message, lines (the status page and `status`)
 *   gitEnv       environment of git children
 *   log          createLogger(ctx)
 *   procs        ProcessGroups: every child process group started
 *   shuttingDown true once SIGTERM/SIGINT or a fatal error began the shutdown
 *   front        the front server on PORT; control the control socket server; syncer the Syncer
 *   terminal(code, phase, message)  enter a terminal phase: linger FAILURE_LINGER, then exit
 */
export function createContext({
  env = process.env,
  stdout = process.stdout,
  stderr = process.stderr,
  exit = (code) => process.exit(code),
} = {}) {
  const ctx = {
    env,
    stdout,
    stderr,
    exit,
    cfg: null,
    redact: makeRedactor(null),
    gitEnv: null,
    shuttingDown: false,
    exiting: false,
    lingering: null,
    everServed: false,
    front: null,
    control: null,
    syncer: null,
  };
  ctx.state = new PreviewState((s) => ctx.redact(s));
  ctx.log = createLogger(ctx);
  ctx.procs = new ProcessGroups(ctx);
  ctx.fatal = (code, msg) => fatal(ctx, code, msg);
  ctx.terminal = (code, phase, msg) => terminal(ctx, code, phase, msg);
  ctx.cancelLinger = () => cancelLinger(ctx);
  return ctx;
}

async function stopEverything(ctx) {
  ctx.shuttingDown = true;
  ctx.syncer?.stop();
  if (ctx.lingering) clearTimeout(ctx.lingering.timer);
  if (ctx.cfg) stopControlServer(ctx.control, ctx.cfg.controlSocket);
  stopFrontProxy(ctx);
  await ctx.procs.killAll();
}

/** Print one `runner: ...` line on stderr, stop every child, exit with `code`. */
export function fatal(ctx, code, msg) {
  if (ctx.exiting) return;
  ctx.exiting = true;
  ctx.log.fatal(msg);
  stopEverything(ctx).finally(() => ctx.exit(code));
}

/**
 * A terminal phase: the status page and `/__preview/ready` show it for FAILURE_LINGER, then the
 * runner exits with `code` and its one line. Without a front server it exits at once.
 */
export function terminal(ctx, code, phase, msg) {
  if (ctx.exiting || ctx.lingering) return;
  ctx.state.set(phase, msg);
  const ms = ctx.cfg?.failureLingerMs ?? 0;
  if (ms === 0 || ctx.front === null) {
    fatal(ctx, code, msg);
    return;
  }
  ctx.log.runner(`${phase}: the status page stays up for ${formatDuration(ms)} (FAILURE_LINGER), then the runner exits with code ${code}`);
  const timer = setTimeout(() => {
    ctx.lingering = null;
    fatal(ctx, code, msg);
  }, ms);
  ctx.lingering = { code, timer };
}

/** Stop a lingering exit (a new commit may fix a crash loop); true when one was stopped. */
function cancelLinger(ctx) {
  if (!ctx.lingering || ctx.exiting) return false;
  clearTimeout(ctx.lingering.timer);
  ctx.lingering = null;
  return true;
}

function onSignal(ctx, signal) {
  if (ctx.exiting) return;
  ctx.exiting = true;
  ctx.log.runner(`received ${signal}; stopping`);
  stopEverything(ctx).finally(() => ctx.exit(EXIT_STOPPED));
}

/**
 * Invalid input: with a usable PORT the status page says what is wrong for FAILURE_LINGER
 * (default when it is itself invalid), then exit 2; else exit 2 at once.
 */
async function invalidInput(ctx, e) {
  ctx.state.set('invalid', e.message);
  let port = null;
  let lingerMs = 0;
  try {
    port = parsePort(ctx.env.PORT);
    lingerMs = parseDuration(ctx.env.FAILURE_LINGER, 'FAILURE_LINGER', DEFAULT_FAILURE_LINGER, 0);
  } catch {
    // no status page (no port), or the default linger
  }
  if (port !== null && lingerMs > 0) {
    try {
      ctx.cfg = { port, devPort: 0, failureLingerMs: lingerMs };
      ctx.front = await startFrontProxy(ctx);
    } catch {
      ctx.front = null;
    }
  }
  ctx.terminal(EXIT_INVALID, 'invalid', e.message);
}

/** Read the inputs; false (after handling) when they are invalid. */
async function configure(ctx) {
  try {
    ctx.cfg = readConfig(ctx.env);
  } catch (e) {
    if (!(e instanceof InputError)) throw e;
    await invalidInput(ctx, e);
    return false;
  }
  const { cfg } = ctx;
  // The token lives only in cfg and in git children's GIT_CONFIG_* environment.
  delete ctx.env.GIT_TOKEN;
  ctx.redact = makeRedactor(cfg.token, SECRET_ENV.map((k) => ctx.env[k]));
  // The header goes where git really connects for REPO_URL (after the config's insteadOf).
  const base = cfg.token === null ? null : effectiveBase(ctx.env, cfg.url);
  ctx.gitEnv = gitEnvFor(ctx.env, base ?? cfg.host, cfg.token);
  return true;
}

/** Control requests: `state` at once; `sync` / `status` once the preview serves or failed for good. */
async function handleControl(ctx, req) {
  if (req.op === 'state') return ctx.state.snapshot();
  while (!ctx.shuttingDown && !ctx.state.terminal && (ctx.syncer === null || !ctx.everServed)) await ctx.state.changed(1_000);
  if (ctx.syncer === null || (ctx.state.terminal && !ctx.everServed)) {
    return { ok: false, error: ctx.state.phase, message: ctx.state.message, dev: ctx.state.snapshot() };
  }
  const reply = req.op === 'status' ? ctx.syncer.status() : await ctx.syncer.requestSync();
  const deadline = Date.now() + SYNC_SETTLE_MS;
  while (!ctx.state.serving && !ctx.state.terminal && Date.now() < deadline) await ctx.state.changed(deadline - Date.now());
  return { ...reply, dev: ctx.state.snapshot() };
}

/** Clone, install, serve, keep in sync. Never resolves to an exit: exits go through ctx.exit. */
export async function main(ctx = createContext()) {
  if (!(await configure(ctx))) return;
  const { cfg } = ctx;
  process.on('SIGTERM', () => onSignal(ctx, 'SIGTERM'));
  process.on('SIGINT', () => onSignal(ctx, 'SIGINT'));
  try {
    ctx.front = await startFrontProxy(ctx);
  } catch (e) {
    ctx.fatal(EXIT_INTERNAL, `cannot listen on 0.0.0.0:${cfg.port} (${e.code ?? e.message})`);
    return;
  }
  ctx.log.runner(`preview on 0.0.0.0:${cfg.port} (status page until the dev server on port ${cfg.devPort} serves)`);

  // $WORKDIR/repo (a symlink to the served tree) and $WORKDIR/trees are replaced at start.
  const link = path.join(cfg.workdir, 'repo');
  fs.mkdirSync(cfg.workdir, { recursive: true });
  fs.rmSync(link, { recursive: true, force: true });
  fs.rmSync(path.join(cfg.workdir, 'trees'), { recursive: true, force: true });

  ctx.control = await startControlServer(ctx, cfg.controlSocket, (req) => handleControl(ctx, req));
  if (ctx.shuttingDown) return;
  const cloned = await cloneFirst(ctx);
  if (cloned === null) return;
  const prebuilt = await usePrebuilt(ctx, cloned.dir);
  if (prebuilt !== null) cloned.dir = prebuilt;
  else if ((await installFirst(ctx, cloned.dir)) === null) return;
  const dev = new DevServer(ctx, cloned.dir);
  const cannot = dev.start();
  if (cannot) {
    ctx.terminal(EXIT_INSTALL, 'no_script', cannot);
    return;
  }
  ctx.syncer = new Syncer(ctx, { dir: cloned.dir, sha: cloned.head, dev, seq: 1 });
  ctx.syncer.start();
  await awaitServing(ctx, dev);
}

/** The first clone: { dir, head } or null (terminal phase entered). */
async function cloneFirst(ctx) {
  const { cfg } = ctx;
  const dir = treeDir(cfg.workdir, 1);
  ctx.state.set('cloning', `cloning ${cfg.url} branch ${cfg.branch}`);
  const cloneError = await clone(ctx, dir);
  if (ctx.shuttingDown) return null;
  if (cloneError !== null) {
    ctx.terminal(EXIT_CLONE, 'clone_failed', cloneError);
    return null;
  }
  pointRepoLink(cfg.workdir, dir);
  const head = await revParse(ctx, dir, 'HEAD');
  ctx.state.revision = head;
  ctx.log.runner(`cloned ${cfg.url} ${cfg.branch} at ${short(head)} into ${path.join(cfg.workdir, 'repo')}`);
  ctx.log.git(`serving ${short(head)}`);
  return { dir, head };
}

/** Check there is something to run, then install: the plan, or null (terminal phase entered). */
async function installFirst(ctx, dir) {
  // Nothing to run: say so before spending minutes on an install.
  const plan = planTree(dir, ctx.cfg);
  if (plan.error) {
    ctx.terminal(EXIT_INSTALL, 'no_script', plan.error);
    return null;
  }
  const where = plan.installDir === dir ? '' : ` in ${path.relative(dir, plan.installDir)}`;
  ctx.state.clearLines('install');
  ctx.state.set('installing', `installing dependencies${where} (${plan.install.join(' ')})`);
  const installed = await install(ctx, plan);
  if (ctx.shuttingDown) return null;
  if (!installed.ok) {
    ctx.terminal(installed.timedOut ? EXIT_INSTALL_TIMEOUT : EXIT_INSTALL, 'install_failed', installFailureMessage(installed));
    return null;
  }
  return plan;
}

/**
 * The clone checked out into the image's prebuilt dependency tree for its lockfile (prebuilt.mjs):
 * that tree's folder, or null (no match, or the move failed: install as usual).
 */
async function usePrebuilt(ctx, dir) {
  const plan = planTree(dir, ctx.cfg);
  if (plan.error || ctx.cfg.rootDirectory !== null) return null;
  const found = findPrebuilt(ctx.cfg.prebuiltDir, dir, plan);
  if (found === null) return null;
  const what = found.template ? `template ${found.template}` : `lockfile ${found.key.slice(0, 12)}`;
  ctx.state.set('installing', `dependencies prebuilt in the image (${what}): npm ci skipped`);
  const why = await adoptPrebuilt(dir, found, (d) => resetHard(ctx, d, 'HEAD'));
  if (why !== null) {
    ctx.log.runner(`prebuilt dependencies not used: ${why}; installing`);
    return null;
  }
  pointRepoLink(ctx.cfg.workdir, found.dir);
  ctx.log.runner(`package-lock.json matches the prebuilt tree of ${what}: checked out into ${found.dir}, npm ci skipped`);
  return found.dir;
}

/** main() with unexpected errors turned into a fatal exit. */
export function run(ctx = createContext()) {
  return main(ctx).catch((e) => fatal(ctx, EXIT_INTERNAL, `unexpected error: ${String(e?.message ?? e)}`));
}
