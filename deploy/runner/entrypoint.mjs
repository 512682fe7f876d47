#!/usr/bin/env node
// fly-preview-controller runner: clone a GitHub repo at a branch, install its dependencies,
// run its dev server on 0.0.0.0:$PORT and keep the working tree in sync with the branch.
//
// Inputs come only from the environment (see README.md). Every external program is spawned
// with an argv array and no shell, so REPO_URL / REPO_BRANCH are never shell text. GIT_TOKEN
// reaches git only through GIT_CONFIG_* environment variables of the git child processes; it
// is never written to argv, .git/config, logs, or the install / dev server environment.
//
// Exit codes: 0 stopped by SIGTERM/SIGINT, 2 invalid input, 3 clone failed,
// 4 install failed or nothing to run, 5 dev server keeps dying at start.
//
// Compatible with Node.js 20 and 22; no npm dependencies.

import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import readline from 'node:readline';
import { pathToFileURL } from 'node:url';

export const EXIT_INVALID = 2;
export const EXIT_CLONE = 3;
export const EXIT_INSTALL = 4;
export const EXIT_DEV_CRASHLOOP = 5;

/** A dev server that exits within this long after starting counts as "dying at start". */
const QUICK_EXIT_MS = 10_000;
/** Consecutive quick exits before the runner gives up. */
const MAX_QUICK_EXITS = 5;
/** Restart backoff: 500ms, 1s, 2s, 4s, ... capped. */
const BACKOFF_BASE_MS = 500;
const BACKOFF_MAX_MS = 8_000;
/** How long a child process group gets between SIGTERM and SIGKILL. */
const KILL_GRACE_MS = 5_000;

// ---------------------------------------------------------------------------------------------
// Validation (pure; same rules as the controller)

export class InputError extends Error {
  constructor(variable, reason) {
    super(`invalid ${variable}: ${reason}`);
    this.variable = variable;
    this.reason = reason;
  }
}

// eslint-disable-next-line no-control-regex
const CONTROL_OR_SPACE = /[\u0000-\u0020\u007f]/;
const NAME_SEGMENT = /^[A-Za-z0-9_][A-Za-z0-9._-]*$/;

/** Parse ALLOWED_HOSTS (comma separated) into a list of lowercase host names. */
export function parseAllowedHosts(raw) {
  const value = raw === undefined ? 'github.com' : raw;
  const hosts = value
    .split(',')
    .map((h) => h.trim().toLowerCase())
    .filter((h) => h.length > 0);
  if (hosts.length === 0) throw new InputError('ALLOWED_HOSTS', 'must list at least one host');
  for (const h of hosts) {
    if (!/^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$/.test(h)) {
      throw new InputError('ALLOWED_HOSTS', `${JSON.stringify(h)} is not a host name`);
    }
  }
  return hosts;
}

/**
 * Validate REPO_URL: `https://<allowed host>/<owner>/<repo>[.git]`, nothing else.
 * Returns { url, host, owner, repo } where url is the canonical form handed to git.
 * Error messages never echo the raw value (it could carry credentials).
 */
export function validateRepoUrl(raw, allowedHosts) {
  const V = 'REPO_URL';
  if (raw === undefined || raw === '') throw new InputError(V, 'must be set');
  if (CONTROL_OR_SPACE.test(raw)) {
    throw new InputError(V, 'must not contain whitespace or control characters');
  }
  const scheme = /^([A-Za-z][A-Za-z0-9+.-]*):/.exec(raw);
  if (!scheme) throw new InputError(V, 'must be an https:// URL');
  if (scheme[1].toLowerCase() !== 'https') {
    throw new InputError(V, `scheme ${JSON.stringify(scheme[1])} is not allowed; must be https://`);
  }
  const rest = raw.slice(scheme[0].length);
  if (!rest.startsWith('//')) throw new InputError(V, 'must be an https:// URL');
  const afterSlashes = rest.slice(2);
  const authEnd = afterSlashes.search(/[/?#]/);
  const authority = authEnd === -1 ? afterSlashes : afterSlashes.slice(0, authEnd);
  const tail = authEnd === -1 ? '' : afterSlashes.slice(authEnd);
  if (authority.includes('@')) throw new InputError(V, 'must not contain credentials');
  if (authority.includes(':')) throw new InputError(V, 'must not contain a port');
  const host = authority.toLowerCase();
  if (host === '') throw new InputError(V, 'must name a host');
  if (!allowedHosts.includes(host)) {
    const shown = /^[a-z0-9.-]+$/.test(host) ? JSON.stringify(host) : 'the host';
    throw new InputError(V, `${shown} is not an allowed host (allowed: ${allowedHosts.join(', ')})`);
  }
  if (tail.includes('#')) throw new InputError(V, 'must not contain a fragment');
  if (tail.includes('?')) throw new InputError(V, 'must not contain a query');
  const m = /^\/([^/]+)\/([^/]+)$/.exec(tail);
  if (!m) throw new InputError(V, 'path must be exactly /owner/repo');
  const owner = m[1];
  const repoWithSuffix = m[2];
  const repo = repoWithSuffix.endsWith('.git') ? repoWithSuffix.slice(0, -4) : repoWithSuffix;
  if (!NAME_SEGMENT.test(owner)) {
    throw new InputError(V, 'owner must be [A-Za-z0-9._-] and not start with "-" or "."');
  }
  if (!NAME_SEGMENT.test(repo)) {
    throw new InputError(V, 'repository name must be [A-Za-z0-9._-] and not start with "-" or "."');
  }
  return { url: `https://${host}/${owner}/${repoWithSuffix}`, host, owner, repo };
}

/** Validate REPO_BRANCH as a git ref name (git check-ref-format --branch rules, plus a length cap). */
export function validateBranch(raw) {
  const V = 'REPO_BRANCH';
  const b = raw === undefined ? 'main' : raw;
  const bad = (why) => {
    throw new InputError(V, why);
  };
  if (b.length === 0) bad('must not be empty');
  if (Buffer.byteLength(b, 'utf8') > 255) bad('must be at most 255 bytes');
  if (CONTROL_OR_SPACE.test(b)) bad('must not contain whitespace or control characters');
  if (b.startsWith('-')) bad('must not start with "-"');
  if (b.startsWith('/')) bad('must not start with "/"');
  if (b.endsWith('/')) bad('must not end with "/"');
  if (b.endsWith('.')) bad('must not end with "."');
  if (b.endsWith('.lock')) bad('must not end with ".lock"');
  if (b.includes('..')) bad('must not contain ".."');
  if (b.includes('//')) bad('must not contain "//"');
  if (b.includes('@{')) bad('must not contain "@{"');
  if (b === '@') bad('must not be "@"');
  const forbidden = /[~^:?*[\\]/.exec(b);
  if (forbidden) bad(`must not contain ${JSON.stringify(forbidden[0])}`);
  for (const component of b.split('/')) {
    if (component.startsWith('.')) bad('no path component may start with "."');
    if (component.endsWith('.lock')) bad('no path component may end with ".lock"');
  }
  return b;
}

/** Parse a duration like `500ms`, `5s`, `1m` into milliseconds. */
export function parseDuration(raw, variable, fallback) {
  const value = raw === undefined || raw === '' ? fallback : raw;
  const m = /^(\d{1,7})(ms|s|m)$/.exec(value);
  if (!m) throw new InputError(variable, 'must look like 500ms, 5s or 1m');
  const ms = Number(m[1]) * { ms: 1, s: 1000, m: 60_000 }[m[2]];
  if (ms < 100) throw new InputError(variable, 'must be at least 100ms');
  if (ms > 3_600_000) throw new InputError(variable, 'must be at most 1h');
  return ms;
}

export function parsePort(raw) {
  const value = raw === undefined || raw === '' ? '3000' : raw;
  if (!/^\d{1,5}$/.test(value) || Number(value) < 1 || Number(value) > 65535) {
    throw new InputError('PORT', 'must be a TCP port number between 1 and 65535');
  }
  return Number(value);
}

/** Read and validate every input from an environment object. Throws InputError. */
export function readConfig(env) {
  const allowedHosts = parseAllowedHosts(env.ALLOWED_HOSTS);
  const repo = validateRepoUrl(env.REPO_URL, allowedHosts);
  const branch = validateBranch(env.REPO_BRANCH);
  const port = parsePort(env.PORT);
  const syncIntervalMs = parseDuration(env.SYNC_INTERVAL, 'SYNC_INTERVAL', '5s');
  const workdir = env.WORKDIR === undefined || env.WORKDIR === '' ? '/app' : env.WORKDIR;
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f]/.test(workdir) || !path.isAbsolute(workdir)) {
    throw new InputError('WORKDIR', 'must be an absolute path');
  }
  const token = env.GIT_TOKEN === undefined || env.GIT_TOKEN === '' ? null : env.GIT_TOKEN;
  if (token !== null && CONTROL_OR_SPACE.test(token)) {
    throw new InputError('GIT_TOKEN', 'must not contain whitespace or control characters');
  }
  return { ...repo, branch, port, syncIntervalMs, workdir, token };
}

// ---------------------------------------------------------------------------------------------
// Package manager and dev server detection (pure)

/** Files whose change between two commits means "reinstall and restart the dev server". */
export const DEPENDENCY_FILES = new Set([
  'package.json',
  'package-lock.json',
  'npm-shrinkwrap.json',
  'pnpm-lock.yaml',
  'yarn.lock',
]);

export function dependenciesChanged(changedPaths) {
  return changedPaths.some(
    (p) => DEPENDENCY_FILES.has(path.posix.basename(p)) && !p.split('/').includes('node_modules'),
  );
}

/** Pick the package manager from the lockfiles present in the repository root. */
export function detectPackageManager(hasFile) {
  if (hasFile('pnpm-lock.yaml')) return { pm: 'pnpm', lockfile: 'pnpm-lock.yaml' };
  if (hasFile('yarn.lock')) return { pm: 'yarn', lockfile: 'yarn.lock' };
  if (hasFile('package-lock.json')) return { pm: 'npm', lockfile: 'package-lock.json' };
  if (hasFile('npm-shrinkwrap.json')) return { pm: 'npm', lockfile: 'npm-shrinkwrap.json' };
  return { pm: 'npm', lockfile: null };
}

/** argv of the install command. */
export function installCommand({ pm, lockfile }) {
  switch (pm) {
    case 'pnpm':
      return ['corepack', 'pnpm', 'install'];
    case 'yarn':
      return ['corepack', 'yarn', 'install'];
    default:
      return lockfile
        ? ['npm', 'ci', '--no-audit', '--no-fund']
        : // --no-package-lock: do not leave an untracked package-lock.json in the tree, which
          // would switch later installs to `npm ci` against a lockfile the repo does not have.
          ['npm', 'install', '--no-audit', '--no-fund', '--no-package-lock'];
  }
}

/**
 * argv of the dev server command: the `dev` script, else `start`, plus host/port arguments for
 * dev servers that ignore the HOST/PORT environment (Vite, Next.js). Returns null when the
 * package has neither script.
 */
export function devCommand(pm, scripts, port) {
  const s = scripts && typeof scripts === 'object' ? scripts : {};
  const name = typeof s.dev === 'string' ? 'dev' : typeof s.start === 'string' ? 'start' : null;
  if (name === null) return null;
  const script = s[name];
  let extra = [];
  if (/(^|[\s;&|(])vite(?=\s|$)/.test(script)) {
    extra = ['--host', '0.0.0.0', '--port', String(port)];
  } else if (/(^|[\s;&|(])next\s+dev(?=\s|$)/.test(script) || /^\s*next\s*$/.test(script)) {
    extra = ['-H', '0.0.0.0', '-p', String(port)];
  }
  let argv;
  switch (pm) {
    case 'pnpm':
      argv = ['corepack', 'pnpm', 'run', name, ...extra];
      break;
    case 'yarn':
      argv = ['corepack', 'yarn', 'run', name, ...extra];
      break;
    default:
      argv = ['npm', 'run', name, ...(extra.length > 0 ? ['--', ...extra] : [])];
  }
  return { script: name, argv };
}

/** Environment additions for install and dev server processes. */
export function childEnv(baseEnv, port) {
  const env = { ...baseEnv };
  delete env.GIT_TOKEN;
  Object.assign(env, {
    PORT: String(port),
    HOST: '0.0.0.0',
    HOSTNAME: '0.0.0.0',
    BROWSER: 'none',
    COREPACK_ENABLE_DOWNLOAD_PROMPT: '0',
    npm_config_update_notifier: 'false',
    npm_config_fund: 'false',
    npm_config_audit: 'false',
  });
  // Vite >= 6.0.9 answers only to localhost/IP Host headers unless told otherwise.
  if (env.__VITE_ADDITIONAL_SERVER_ALLOWED_HOSTS === undefined) {
    env.__VITE_ADDITIONAL_SERVER_ALLOWED_HOSTS = env.FLY_APP_NAME
      ? `${env.FLY_APP_NAME}.fly.dev`
      : '.fly.dev';
  }
  return env;
}

/** GIT_CONFIG_* environment that adds an Authorization header for https://<host>/ only. */
export function gitAuthEnv(baseEnv, host, token) {
  const env = {};
  if (token === null) return env;
  const existing = Number.parseInt(baseEnv.GIT_CONFIG_COUNT ?? '0', 10);
  const i = Number.isFinite(existing) && existing > 0 ? existing : 0;
  const basic = Buffer.from(`x-access-token:${token}`, 'utf8').toString('base64');
  env.GIT_CONFIG_COUNT = String(i + 1);
  env[`GIT_CONFIG_KEY_${i}`] = `http.https://${host}/.extraheader`;
  env[`GIT_CONFIG_VALUE_${i}`] = `Authorization: Basic ${basic}`;
  return env;
}

/** A function that removes every form of the token from a string. */
export function makeRedactor(token) {
  if (token === null) return (s) => s;
  const forms = [
    Buffer.from(`x-access-token:${token}`, 'utf8').toString('base64'),
    Buffer.from(token, 'utf8').toString('base64'),
    encodeURIComponent(token),
    token,
  ].filter((f, i, all) => f.length > 0 && all.indexOf(f) === i);
  return (s) => {
    let out = s;
    for (const f of forms) out = out.split(f).join('[REDACTED]');
    return out;
  };
}

// ---------------------------------------------------------------------------------------------
// Process plumbing

let redact = (s) => s;
const live = new Set(); // process groups we started and have not seen exit
let shuttingDown = false;

function log(msg) {
  process.stdout.write(`[runner] ${redact(msg)}\n`);
}

function pipeLines(stream, prefix, out) {
  const rl = readline.createInterface({ input: stream, crlfDelay: Infinity });
  rl.on('line', (line) => {
    if (line.trim().length > 0) out.write(`${prefix} ${redact(line)}\n`);
  });
}

/** Spawn argv in its own process group; stdout/stderr are line-prefixed. */
function spawnPrefixed(argv, { cwd, env, prefix }) {
  const child = spawn(argv[0], argv.slice(1), {
    cwd,
    env,
    detached: true, // own process group, so the whole tree can be signalled
    stdio: ['ignore', 'pipe', 'pipe'],
    shell: false,
  });
  trackGroup(child);
  pipeLines(child.stdout, prefix, process.stdout);
  pipeLines(child.stderr, prefix, process.stderr);
  return child;
}

function trackGroup(child) {
  if (child.pid !== undefined) live.add(child.pid);
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

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** SIGTERM the process group, SIGKILL it after the grace period, wait until it is empty. */
async function killGroup(pgid, graceMs = KILL_GRACE_MS) {
  signalGroup(pgid, 'SIGTERM');
  const deadline = Date.now() + graceMs;
  while (groupAlive(pgid) && Date.now() < deadline) await sleep(50);
  if (groupAlive(pgid)) {
    signalGroup(pgid, 'SIGKILL');
    const hard = Date.now() + 2_000;
    while (groupAlive(pgid) && Date.now() < hard) await sleep(50);
  }
  live.delete(pgid);
}

function waitExit(child) {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) {
      resolve({ code: child.exitCode, signal: child.signalCode });
      return;
    }
    child.once('error', (err) => resolve({ code: null, signal: null, error: err }));
    child.once('exit', (code, signal) => resolve({ code, signal }));
  });
}

function describeExit({ code, signal, error }) {
  if (error) return `could not start (${error.code ?? error.message})`;
  if (signal) return `killed by ${signal}`;
  return `exited with code ${code}`;
}

// ---------------------------------------------------------------------------------------------
// git

let cfg; // validated configuration
let gitEnv; // environment for git children

/** Run git with output captured (never shown unredacted). */
function git(args, cwd) {
  return new Promise((resolve) => {
    const child = spawn('git', args, {
      cwd,
      env: gitEnv,
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
      shell: false,
    });
    trackGroup(child);
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
      live.delete(child.pid);
      resolve({ code, stdout: redact(stdout), stderr: redact(stderr), error });
    };
    child.on('error', (err) => finish(null, err));
    child.on('close', (code) => finish(code, null));
  });
}

function firstErrorLine(stderr) {
  const lines = stderr
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l.length > 0);
  return lines.find((l) => /^(fatal|error):/i.test(l)) ?? lines[0] ?? 'no error output';
}

function logGitOutput(result) {
  for (const line of `${result.stdout}${result.stderr}`.split('\n')) {
    if (line.trim().length > 0) process.stdout.write(`[git] ${line}\n`);
  }
}

async function clone(dir) {
  fs.mkdirSync(path.dirname(dir), { recursive: true });
  fs.rmSync(dir, { recursive: true, force: true });
  log(`cloning ${cfg.url} branch ${cfg.branch}`);
  const r = await git(
    ['clone', '--depth', '1', '--single-branch', '--no-tags', '--branch', cfg.branch, '--', cfg.url, dir],
    path.dirname(dir),
  );
  if (r.code === 0) return true;
  if (shuttingDown) return false;
  logGitOutput(r);
  const err = r.stderr;
  if (r.error) {
    fatal(EXIT_CLONE, `clone failed: could not run git (${r.error.code ?? r.error.message})`);
  } else if (/Remote branch .* not found|Could not find remote branch/i.test(err)) {
    fatal(EXIT_CLONE, `clone failed: branch '${cfg.branch}' not found in ${cfg.url}`);
  } else if (/Authentication failed|could not read Username|terminal prompts disabled/i.test(err)) {
    fatal(EXIT_CLONE, `clone failed: authentication to ${cfg.url} failed: ${firstErrorLine(err)}`);
  } else {
    fatal(EXIT_CLONE, `clone failed: repository ${cfg.url} not reachable: ${firstErrorLine(err)}`);
  }
  return false;
}

async function revParse(dir, rev) {
  const r = await git(['rev-parse', '--verify', '--quiet', `${rev}^{commit}`], dir);
  return r.code === 0 ? r.stdout.trim() : null;
}

// ---------------------------------------------------------------------------------------------
// install + dev server

function readPackageJson(dir) {
  const file = path.join(dir, 'package.json');
  if (!fs.existsSync(file)) return { error: 'no package.json in the repository root' };
  try {
    return { pkg: JSON.parse(fs.readFileSync(file, 'utf8')) };
  } catch (e) {
    return { error: `package.json is not valid JSON (${e.message})` };
  }
}

/** Install dependencies; returns null on success or a one-line reason. */
async function install(dir) {
  const read = readPackageJson(dir);
  if (read.error) return read.error;
  const detected = detectPackageManager((f) => fs.existsSync(path.join(dir, f)));
  const argv = installCommand(detected);
  log(`installing dependencies: ${argv.join(' ')}`);
  const child = spawnPrefixed(argv, { cwd: dir, env: childEnv(process.env, cfg.port), prefix: '[install]' });
  const result = await waitExit(child);
  await killGroup(child.pid, 1_000); // reap stragglers of the install tree
  if (result.code === 0) return null;
  return `${argv.slice(0, argv[0] === 'corepack' ? 3 : 2).join(' ')} ${describeExit(result)}`;
}

class DevServer {
  constructor(dir) {
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
    clearTimeout(this.timer);
    this.timer = null;
    if (this.child !== null || shuttingDown) return null;
    const read = readPackageJson(this.dir);
    if (read.error) return read.error;
    const detected = detectPackageManager((f) => fs.existsSync(path.join(this.dir, f)));
    const cmd = devCommand(detected.pm, read.pkg.scripts, cfg.port);
    if (cmd === null) return 'package.json has neither a "dev" nor a "start" script';
    this.wanted = true;
    log(`starting dev server on 0.0.0.0:${cfg.port}: ${cmd.argv.join(' ')}`);
    const child = spawnPrefixed(cmd.argv, {
      cwd: this.dir,
      env: childEnv(process.env, cfg.port),
      prefix: '[dev]',
    });
    this.child = child;
    this.startedAt = Date.now();
    waitExit(child)
      .then((result) => this.onExit(child, result))
      .catch((e) => fatal(1, `unexpected error: ${e.message}`));
    return null;
  }

  async onExit(child, result) {
    if (this.child !== child) return; // stopped on purpose
    this.child = null;
    await killGroup(child.pid, 1_000); // take down whatever the script left behind
    if (!this.wanted || shuttingDown || this.child !== null) return;
    const ranMs = Date.now() - this.startedAt;
    this.quickExits = ranMs >= QUICK_EXIT_MS ? 1 : this.quickExits + 1;
    if (this.quickExits >= MAX_QUICK_EXITS) {
      fatal(
        EXIT_DEV_CRASHLOOP,
        `dev server keeps exiting at start (${this.quickExits} times in a row, last ${describeExit(result)}); giving up`,
      );
      return;
    }
    const delay = Math.min(BACKOFF_BASE_MS * 2 ** (this.quickExits - 1), BACKOFF_MAX_MS);
    log(`dev server ${describeExit(result)}; restarting in ${delay}ms`);
    this.timer = setTimeout(() => {
      const why = this.start();
      if (why) log(`cannot start dev server: ${why}; waiting for the next commit`);
    }, delay);
  }

  async stop() {
    this.wanted = false;
    clearTimeout(this.timer);
    this.timer = null;
    const child = this.child;
    this.child = null;
    if (child) {
      log('stopping dev server');
      await killGroup(child.pid);
    }
  }

  /** A new commit arrived: forget earlier crashes. */
  resetFailures() {
    this.quickExits = 0;
  }
}

// ---------------------------------------------------------------------------------------------
// sync loop

async function syncOnce(dir, dev, state) {
  const fetched = await git(
    ['fetch', '--depth', '1', '--no-tags', '--quiet', '--', 'origin', `refs/heads/${cfg.branch}`],
    dir,
  );
  if (fetched.code !== 0) {
    state.fetchFailures += 1;
    if (state.fetchFailures === 1 || state.fetchFailures % 60 === 0) {
      log(`fetch failed (${state.fetchFailures}x): ${firstErrorLine(fetched.stderr)}`);
    }
    return;
  }
  if (state.fetchFailures > 0) log('fetch recovered');
  state.fetchFailures = 0;

  const head = await revParse(dir, 'HEAD');
  const next = await revParse(dir, 'FETCH_HEAD');
  if (next === null || next === head) return;

  let depsChanged = true;
  if (head !== null) {
    const diff = await git(['diff', '--name-only', '--no-renames', head, next, '--'], dir);
    if (diff.code === 0) depsChanged = dependenciesChanged(diff.stdout.split('\n').filter(Boolean));
  }
  const reset = await git(['reset', '--hard', '--quiet', next], dir);
  if (reset.code !== 0) {
    log(`reset to ${next.slice(0, 12)} failed: ${firstErrorLine(reset.stderr)}`);
    return;
  }
  log(`updated ${head ? head.slice(0, 12) : '?'} -> ${next.slice(0, 12)}`);
  dev.resetFailures();

  if (depsChanged || state.installFailed) {
    log('dependency files changed: reinstalling and restarting the dev server');
    await dev.stop();
    if (shuttingDown) return;
    const why = await install(dir);
    if (shuttingDown) return;
    if (why) {
      state.installFailed = true;
      log(`install failed: ${why}; waiting for the next commit`);
      return;
    }
    state.installFailed = false;
  }
  if (!dev.running) {
    const why = dev.start();
    if (why) log(`cannot start dev server: ${why}; waiting for the next commit`);
  }
}

function syncLoop(dir, dev) {
  const state = { fetchFailures: 0, installFailed: false };
  const tick = async () => {
    if (shuttingDown) return;
    const started = Date.now();
    try {
      await syncOnce(dir, dev, state);
    } catch (e) {
      log(`sync error: ${e.message}`);
    }
    if (shuttingDown) return;
    // Fixed rate: the next fetch starts one interval after this one started.
    const wait = Math.max(0, cfg.syncIntervalMs - (Date.now() - started));
    setTimeout(tick, wait);
  };
  setTimeout(tick, cfg.syncIntervalMs);
}

// ---------------------------------------------------------------------------------------------
// lifecycle

let exiting = false;

async function stopEverything() {
  shuttingDown = true;
  await Promise.all([...live].map((pgid) => killGroup(pgid)));
}

/** Print one `runner: ...` line on stderr, stop every child, exit with `code`. */
function fatal(code, msg) {
  if (exiting) return;
  exiting = true;
  process.stderr.write(`runner: ${redact(msg)}\n`);
  stopEverything().finally(() => process.exit(code));
}

function onSignal(signal) {
  if (exiting) return;
  exiting = true;
  log(`received ${signal}; stopping`);
  stopEverything().finally(() => process.exit(0));
}

export async function main() {
  try {
    cfg = readConfig(process.env);
  } catch (e) {
    if (e instanceof InputError) {
      process.stderr.write(`runner: ${e.message}\n`);
      process.exit(EXIT_INVALID);
    }
    throw e;
  }
  // The token lives only in cfg and in git children's GIT_CONFIG_* environment.
  delete process.env.GIT_TOKEN;
  redact = makeRedactor(cfg.token);
  gitEnv = { ...process.env, GIT_TERMINAL_PROMPT: '0', GIT_ASKPASS: '', SSH_ASKPASS: '' };
  Object.assign(gitEnv, gitAuthEnv(process.env, cfg.host, cfg.token));

  process.on('SIGTERM', () => onSignal('SIGTERM'));
  process.on('SIGINT', () => onSignal('SIGINT'));

  const dir = path.join(cfg.workdir, 'repo');
  if (!(await clone(dir)) || shuttingDown) return;
  const head = await revParse(dir, 'HEAD');
  log(`cloned ${cfg.url} ${cfg.branch} at ${head ? head.slice(0, 12) : '?'} into ${dir}`);
  const why = await install(dir);
  if (shuttingDown) return;
  if (why) {
    fatal(EXIT_INSTALL, `install failed: ${why}`);
    return;
  }
  const dev = new DevServer(dir);
  const cannot = dev.start();
  if (cannot) {
    fatal(EXIT_INSTALL, cannot);
    return;
  }
  syncLoop(dir, dev);
}

const invokedDirectly =
  process.argv[1] !== undefined && import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href;
if (invokedDirectly) {
  main().catch((e) => fatal(1, `unexpected error: ${String(e?.message ?? e)}`));
}
