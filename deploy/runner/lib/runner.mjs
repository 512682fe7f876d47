// Lifecycle of the runner: the context object every module receives, startup, fatal exits and
// signals.

import fs from 'node:fs';
import path from 'node:path';

import { InputError, readConfig } from './config.mjs';
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
import { clone, gitEnvFor, revParse } from './git.mjs';
import { install } from './install.mjs';
import { createLogger, makeRedactor } from './log.mjs';
import { planTree } from './pkgmanager.mjs';
import { ProcessGroups } from './procgroup.mjs';
import { Syncer, awaitListening, pointRepoLink, short, treeDir } from './sync.mjs';

/**
 * The state of one runner, passed to every module instead of module-level globals.
 *   env          environment of the runner (GIT_TOKEN is deleted from it once read)
 *   stdout/err   where logs go
 *   exit(code)   how the process ends
 *   cfg          validated configuration (readConfig), null until read
 *   redact(s)    removes every form of the token
 *   gitEnv       environment of git children
 *   log          createLogger(ctx)
 *   procs        ProcessGroups: every child process group started
 *   shuttingDown true once SIGTERM/SIGINT or a fatal error began the shutdown
 *   control      the control socket server, syncer the Syncer (once serving)
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
    redact: (s) => s,
    gitEnv: null,
    shuttingDown: false,
    exiting: false,
    control: null,
    syncer: null,
  };
  ctx.log = createLogger(ctx);
  ctx.procs = new ProcessGroups(ctx);
  ctx.fatal = (code, msg) => fatal(ctx, code, msg);
  return ctx;
}

async function stopEverything(ctx) {
  ctx.shuttingDown = true;
  ctx.syncer?.stop();
  if (ctx.cfg) stopControlServer(ctx.control, ctx.cfg.controlSocket);
  await ctx.procs.killAll();
}

/** Print one `runner: ...` line on stderr, stop every child, exit with `code`. */
export function fatal(ctx, code, msg) {
  if (ctx.exiting) return;
  ctx.exiting = true;
  ctx.log.fatal(msg);
  stopEverything(ctx).finally(() => ctx.exit(code));
}

function onSignal(ctx, signal) {
  if (ctx.exiting) return;
  ctx.exiting = true;
  ctx.log.runner(`received ${signal}; stopping`);
  stopEverything(ctx).finally(() => ctx.exit(EXIT_STOPPED));
}

/** Clone, install, serve, keep in sync. Never resolves to an exit: exits go through ctx.exit. */
export async function main(ctx = createContext()) {
  try {
    ctx.cfg = readConfig(ctx.env);
  } catch (e) {
    if (e instanceof InputError) {
      ctx.log.fatal(e.message);
      ctx.exit(EXIT_INVALID);
      return;
    }
    throw e;
  }
  const { cfg } = ctx;
  // The token lives only in cfg and in git children's GIT_CONFIG_* environment.
  delete ctx.env.GIT_TOKEN;
  ctx.redact = makeRedactor(cfg.token);
  ctx.gitEnv = gitEnvFor(ctx.env, cfg.host, cfg.token);

  process.on('SIGTERM', () => onSignal(ctx, 'SIGTERM'));
  process.on('SIGINT', () => onSignal(ctx, 'SIGINT'));

  // $WORKDIR/repo (a symlink to the served tree) and $WORKDIR/trees are replaced at start.
  const link = path.join(cfg.workdir, 'repo');
  fs.mkdirSync(cfg.workdir, { recursive: true });
  fs.rmSync(link, { recursive: true, force: true });
  fs.rmSync(path.join(cfg.workdir, 'trees'), { recursive: true, force: true });

  // Sync requests made before the first dev server runs wait for it.
  let serving;
  const ready = new Promise((resolve) => {
    serving = resolve;
  });
  ctx.control = await startControlServer(ctx, cfg.controlSocket, async (req) => {
    const syncer = await ready;
    return req.op === 'status' ? syncer.status() : syncer.requestSync();
  });
  if (ctx.shuttingDown) return;

  const dir = treeDir(cfg.workdir, 1);
  const cloneError = await clone(ctx, dir);
  if (ctx.shuttingDown) return;
  if (cloneError !== null) {
    ctx.fatal(EXIT_CLONE, cloneError);
    return;
  }
  pointRepoLink(cfg.workdir, dir);
  const head = await revParse(ctx, dir, 'HEAD');
  ctx.log.runner(`cloned ${cfg.url} ${cfg.branch} at ${short(head)} into ${link}`);
  ctx.log.git(`serving ${short(head)}`);

  // Nothing to run: say so before spending minutes on an install.
  const plan = planTree(dir, cfg.port);
  if (plan.error) {
    ctx.fatal(EXIT_INSTALL, plan.error);
    return;
  }
  const installed = await install(ctx, dir, plan);
  if (ctx.shuttingDown) return;
  if (!installed.ok) {
    if (installed.timedOut) ctx.fatal(EXIT_INSTALL_TIMEOUT, installed.reason);
    else ctx.fatal(EXIT_INSTALL, `install failed: ${installed.reason}`);
    return;
  }
  const dev = new DevServer(ctx, dir);
  const cannot = dev.start();
  if (cannot) {
    ctx.fatal(EXIT_INSTALL, cannot);
    return;
  }
  ctx.syncer = new Syncer(ctx, { dir, sha: head, dev, seq: 1 });
  ctx.syncer.start();
  // Control requests made during startup are answered once the dev server answers.
  await awaitListening(ctx, dev);
  serving(ctx.syncer);
}

/** main() with unexpected errors turned into a fatal exit. */
export function run(ctx = createContext()) {
  return main(ctx).catch((e) => fatal(ctx, EXIT_INTERNAL, `unexpected error: ${String(e?.message ?? e)}`));
}
