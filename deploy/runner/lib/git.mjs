// git: clone, fetch, reset, and a second tree for zero-downtime dependency changes.
// REPO_URL / REPO_BRANCH reach git only as single argv elements (after `--` where git would
// otherwise parse options); GIT_TOKEN only through GIT_CONFIG_* environment of git children.

import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

/**
 * Where git really sends requests for `url`: `scheme://host[:port]/` after the git config's
 * `url.<base>.insteadOf` rewrites (an operator's mirror, a test server), else null.
 */
export function effectiveBase(env, url) {
  const r = spawnSync('git', ['ls-remote', '--get-url', '--', url], { env, encoding: 'utf8', timeout: 10_000 });
  try {
    const u = new URL((r.stdout ?? '').trim());
    return u.protocol === 'https:' ? `https://${u.host}/` : null;
  } catch {
    return null;
  }
}

/**
 * GIT_CONFIG_* environment that adds an Authorization header for requests to one host only:
 * `host` (`github.com`, meaning https://github.com/) or a base URL (`https://localhost:8443/`).
 */
export function gitAuthEnv(baseEnv, host, token) {
  const env = {};
  if (token === null) return env;
  const existing = Number.parseInt(baseEnv.GIT_CONFIG_COUNT ?? '0', 10);
  const i = Number.isFinite(existing) && existing > 0 ? existing : 0;
  const basic = Buffer.from(`x-access-token:${token}`, 'utf8').toString('base64');
  env.GIT_CONFIG_COUNT = String(i + 1);
  const base = host.includes('://') ? host : `https://${host}/`;
  env[`GIT_CONFIG_KEY_${i}`] = `http.${base}.extraheader`;
  env[`GIT_CONFIG_VALUE_${i}`] = `Authorization: Basic ${basic}`;
  return env;
}

/** Environment of git children: no prompts, and the token header when there is a token. */
export function gitEnvFor(baseEnv, host, token) {
  const env = { ...baseEnv, GIT_TERMINAL_PROMPT: '0', GIT_ASKPASS: '', SSH_ASKPASS: '' };
  delete env.GIT_TOKEN;
  return Object.assign(env, gitAuthEnv(baseEnv, host, token));
}

export function firstErrorLine(stderr) {
  const lines = stderr
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l.length > 0);
  return lines.find((l) => /^(fatal|error):/i.test(l)) ?? lines[0] ?? 'no error output';
}

/** Run git with output captured and redacted: { code, stdout, stderr, error }. */
export async function git(ctx, args, cwd) {
  const r = await ctx.procs.capture(['git', ...args], { cwd, env: ctx.gitEnv });
  return { ...r, stdout: ctx.redact(r.stdout), stderr: ctx.redact(r.stderr) };
}

function logGitOutput(ctx, result) {
  for (const line of `${result.stdout}${result.stderr}`.split('\n')) {
    if (line.trim().length > 0) ctx.log.git(line);
  }
}

/** Shallow single-branch clone into `dir`; null on success, else the one-line reason. */
export async function clone(ctx, dir) {
  const { cfg } = ctx;
  fs.mkdirSync(path.dirname(dir), { recursive: true });
  fs.rmSync(dir, { recursive: true, force: true });
  ctx.log.runner(`cloning ${cfg.url} branch ${cfg.branch}`);
  const r = await git(
    ctx,
    ['clone', '--depth', '1', '--single-branch', '--no-tags', '--branch', cfg.branch, '--', cfg.url, dir],
    path.dirname(dir),
  );
  if (r.code === 0) return null;
  if (ctx.shuttingDown) return 'stopped';
  logGitOutput(ctx, r);
  const err = r.stderr;
  if (r.error) return `clone failed: could not run git (${r.error.code ?? r.error.message})`;
  if (/Remote branch .* not found|Could not find remote branch/i.test(err)) {
    return `clone failed: branch '${cfg.branch}' not found in ${cfg.url}`;
  }
  return cloneFailure(cfg, err);
}

/** The repository asked for credentials it did not get (no GIT_TOKEN, or one it refuses), or null. */
function accessFailure(cfg, err) {
  const refused = /Authentication failed|could not read Username|terminal prompts disabled|Invalid username or password|The requested URL returned error: 40[13]|HTTP 40[13]/i;
  if (!refused.test(err)) return null;
  const first = firstErrorLine(err);
  return cfg.token === null
    ? `the repository needs access: add GIT_TOKEN (a token that can read ${cfg.url}) (${first})`
    : `the repository refused GIT_TOKEN: renew GIT_TOKEN (a token that can read ${cfg.url}) (${first})`;
}

/**
 * Why a clone failed, as the person who can fix it needs it: a repository that needs access
 * (no GIT_TOKEN, or one it refuses) is told apart from one that is not there. GitHub answers a
 * private repository without a token with "Repository not found", like a missing one.
 */
export function cloneFailure(cfg, err) {
  const first = firstErrorLine(err);
  const access = accessFailure(cfg, err);
  if (access) return `clone failed: ${access}`;
  if (/Repository not found|The requested URL returned error: 404/i.test(err)) {
    return cfg.token === null
      ? `clone failed: repository ${cfg.url} not found; if it is private, add GIT_TOKEN (a token that can read it)`
      : `clone failed: repository ${cfg.url} not found, or GIT_TOKEN cannot read it`;
  }
  return `clone failed: repository ${cfg.url} not reachable: ${first}`;
}

export async function revParse(ctx, dir, rev) {
  const r = await git(ctx, ['rev-parse', '--verify', '--quiet', `${rev}^{commit}`], dir);
  return r.code === 0 ? r.stdout.trim() : null;
}

/** Fetch the branch tip: { sha } or { error } (one line). Does not touch the working tree. */
export async function fetchBranch(ctx, dir) {
  const r = await git(
    ctx,
    ['fetch', '--depth', '1', '--no-tags', '--quiet', '--', 'origin', `refs/heads/${ctx.cfg.branch}`],
    dir,
  );
  if (r.code !== 0) {
    if (r.error) return { error: `could not run git (${r.error.code ?? r.error.message})` };
    const access = accessFailure(ctx.cfg, r.stderr);
    return { error: access ?? firstErrorLine(r.stderr) };
  }
  const sha = await revParse(ctx, dir, 'FETCH_HEAD');
  return sha === null ? { error: 'FETCH_HEAD is not a commit' } : { sha };
}

/** Paths changed between two commits, or null when git cannot tell. */
export async function changedPaths(ctx, dir, from, to) {
  const r = await git(ctx, ['diff', '--name-only', '--no-renames', from, to, '--'], dir);
  return r.code === 0 ? r.stdout.split('\n').filter(Boolean) : null;
}

/** `git reset --hard <sha>`; null on success, else the one-line reason. */
export async function resetHard(ctx, dir, sha) {
  const r = await git(ctx, ['reset', '--hard', '--quiet', sha], dir);
  return r.code === 0 ? null : firstErrorLine(r.stderr);
}

/** Copy a directory tree; files under `objects/` (immutable) are hard-linked when possible. */
function copyGitDir(from, to, linkable = false) {
  fs.mkdirSync(to, { recursive: true });
  for (const e of fs.readdirSync(from, { withFileTypes: true })) {
    const src = path.join(from, e.name);
    const dst = path.join(to, e.name);
    if (e.isDirectory()) {
      copyGitDir(src, dst, linkable || e.name === 'objects');
    } else if (e.isSymbolicLink()) {
      fs.symlinkSync(fs.readlinkSync(src), dst);
    } else if (e.isFile()) {
      if (e.name === 'index' || e.name.endsWith('.lock')) continue; // rebuilt by the checkout
      if (linkable) {
        try {
          fs.linkSync(src, dst);
          continue;
        } catch {
          // other file system or no permission: copy
        }
      }
      fs.copyFileSync(src, dst);
    }
  }
}

/**
 * A second, independent tree at `sha` beside the served one: a copy of its `.git` (the objects
 * for `sha` were fetched there) and a fresh checkout, without node_modules or build output.
 * Null on success, else the one-line reason.
 */
export async function prepareTree(ctx, fromDir, toDir, sha) {
  try {
    fs.rmSync(toDir, { recursive: true, force: true });
    copyGitDir(path.join(fromDir, '.git'), path.join(toDir, '.git'));
  } catch (e) {
    fs.rmSync(toDir, { recursive: true, force: true });
    return `could not copy the repository (${e.code ?? e.message})`;
  }
  const why = await resetHard(ctx, toDir, sha);
  if (why !== null) fs.rmSync(toDir, { recursive: true, force: true });
  return why;
}
