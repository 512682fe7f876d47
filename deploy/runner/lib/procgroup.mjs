// Child processes in their own process groups, so a whole tree (npm → sh → node → esbuild ...)
// can be signalled and reaped. Every external program is spawned with an argv array and no shell.

import { spawn } from 'node:child_process';
import readline from 'node:readline';

/** How long a child process group gets between SIGTERM and SIGKILL. */
export const KILL_GRACE_MS = 5_000;

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

export function waitExit(child) {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) {
      resolve({ code: child.exitCode, signal: child.signalCode });
      return;
    }
    child.once('error', (err) => resolve({ code: null, signal: null, error: err }));
    child.once('exit', (code, signal) => resolve({ code, signal }));
  });
}

export function describeExit({ code, signal, error }) {
  if (error) return `could not start (${error.code ?? error.message})`;
  if (signal) return `killed by ${signal}`;
  return `exited with code ${code}`;
}

function groupAlive(pgid) {
  try {
    process.kill(-pgid, 0);
    return true;
  } catch {
    return false;
  }
}

function signalGroup(pgid, signal) {
  try {
    process.kill(-pgid, signal);
  } catch {
    // already gone
  }
}

/** The process groups a runner started; `ctx.procs`. Logging goes through `ctx.log`. */
export class ProcessGroups {
  constructor(ctx) {
    this.ctx = ctx;
    this.live = new Set(); // process groups we started and have not seen exit
  }

  track(child) {
    if (child.pid !== undefined) this.live.add(child.pid);
  }

  untrack(pgid) {
    this.live.delete(pgid);
  }

  /** Spawn argv in its own process group; stdout/stderr lines are cleaned and prefixed. */
  spawnPrefixed(argv, { cwd, env, prefix, onLine = null }) {
    const child = spawn(argv[0], argv.slice(1), {
      cwd,
      env,
      detached: true, // own process group, so the whole tree can be signalled
      stdio: ['ignore', 'pipe', 'pipe'],
      shell: false,
    });
    this.track(child);
    for (const [stream, toStderr] of [
      [child.stdout, false],
      [child.stderr, true],
    ]) {
      const rl = readline.createInterface({ input: stream, crlfDelay: Infinity });
      rl.on('line', (line) => {
        this.ctx.log.child(prefix, line, toStderr);
        if (onLine) onLine(line);
      });
    }
    return child;
  }

  /** Run argv in its own process group with output captured: { code, stdout, stderr, error }. */
  capture(argv, { cwd, env }) {
    return new Promise((resolve) => {
      const child = spawn(argv[0], argv.slice(1), {
        cwd,
        env,
        detached: true,
        stdio: ['ignore', 'pipe', 'pipe'],
        shell: false,
      });
      this.track(child);
      let stdout = '';
      let stderr = '';
      child.stdout.setEncoding('utf8').on('data', (d) => {
        stdout += d;
      });
      child.stderr.setEncoding('utf8').on('data', (d) => {
        stderr += d;
      });
      let settled = false;
      const finish = (code, error) => {
        if (settled) return;
        settled = true;
        this.untrack(child.pid);
        resolve({ code, stdout, stderr, error });
      };
      child.on('error', (err) => finish(null, err));
      child.on('close', (code) => finish(code, null));
    });
  }

  /** SIGTERM the process group, SIGKILL it after the grace period, wait until it is empty. */
  async kill(pgid, graceMs = KILL_GRACE_MS) {
    signalGroup(pgid, 'SIGTERM');
    const deadline = Date.now() + graceMs;
    while (groupAlive(pgid) && Date.now() < deadline) await sleep(50);
    if (groupAlive(pgid)) {
      signalGroup(pgid, 'SIGKILL');
      const hard = Date.now() + 2_000;
      while (groupAlive(pgid) && Date.now() < hard) await sleep(50);
    }
    this.untrack(pgid);
  }

  /** Stop every group still running. */
  async killAll() {
    await Promise.all([...this.live].map((pgid) => this.kill(pgid)));
  }
}
