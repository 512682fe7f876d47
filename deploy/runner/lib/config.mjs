// Environment parsing and validation (pure; same rules as the controller's src/model/validate.rs,
// both checked against testdata/repo-input-cases.json).

import path from 'node:path';

import { DEFAULT_PREBUILT_DIR } from './prebuilt.mjs';

export class InputError extends Error {
  /**
   * @param {string} variable the environment variable
   * @param {string} reason one human-readable clause; never echoes a secret-bearing value
   * @param {string} why a short stable tag (the `why` of testdata/repo-input-cases.json)
   */
  constructor(variable, reason, why = 'invalid') {
    super(`invalid ${variable}: ${reason}`);
    this.variable = variable;
    this.reason = reason;
    this.why = why;
  }
}

// eslint-disable-next-line no-control-regex
const CONTROL_OR_SPACE = /[\u0000-\u0020\u007f]/;
const NAME_SEGMENT = /^[A-Za-z0-9_][A-Za-z0-9._-]*$/;

/** Longest REPO_URL accepted (bytes; every accepted URL is ASCII). */
export const MAX_URL_LEN = 2048;
/** Longest REPO_BRANCH accepted, in UTF-8 bytes. */
export const MAX_BRANCH_LEN = 255;

/**
 * Invisible "format" characters refused in branch names: Unicode general category Cf (as of
 * Unicode 17: soft hyphen, Arabic/Syriac marks, zero-width space/joiners, LRM/RLM, bidi
 * embeddings, overrides and isolates, word joiner and invisible operators, BOM, interlinear
 * annotation, ...) plus the whole tag block U+E0000–U+E007F. Inclusive code point ranges, kept
 * explicit so the controller can use the same table.
 */
export const FORMAT_CHAR_RANGES = [
  [0x00ad, 0x00ad],
  [0x0600, 0x0605],
  [0x061c, 0x061c],
  [0x06dd, 0x06dd],
  [0x070f, 0x070f],
  [0x0890, 0x0891],
  [0x08e2, 0x08e2],
  [0x180e, 0x180e],
  [0x200b, 0x200f],
  [0x202a, 0x202e],
  [0x2060, 0x2064],
  [0x2066, 0x206f],
  [0xfeff, 0xfeff],
  [0xfff9, 0xfffb],
  [0x110bd, 0x110bd],
  [0x110cd, 0x110cd],
  [0x13430, 0x1343f],
  [0x1bca0, 0x1bca3],
  [0x1d173, 0x1d17a],
  [0xe0000, 0xe007f],
];

/**
 * Invisible characters that are neither Cf nor White_Space, refused in branch names too: blank
 * letters and symbols (Hangul fillers, the Braille blank), variation selectors (incl. the emoji
 * presentation selector U+FE0F), the combining grapheme joiner. The controller keeps the same
 * table (src/model/invisible.rs).
 */
export const INVISIBLE_RANGES = [
  [0x034f, 0x034f],
  [0x115f, 0x1160],
  [0x17b4, 0x17b5],
  [0x180b, 0x180d],
  [0x180f, 0x180f],
  [0x2800, 0x2800],
  [0x3164, 0x3164],
  [0xfe00, 0xfe0f],
  [0xffa0, 0xffa0],
  [0xe0100, 0xe01ef],
];

const hex = (n) => `\\u{${n.toString(16)}}`;
const charClass = (ranges) =>
  new RegExp(`[${ranges.map(([a, b]) => (a === b ? hex(a) : `${hex(a)}-${hex(b)}`)).join('')}]`, 'u');
const FORMAT_CHAR = charClass(FORMAT_CHAR_RANGES);
const INVISIBLE = charClass(INVISIBLE_RANGES);
/** A combining mark after no letter, digit or other mark (as the controller's `lone_mark`). */
const LONE_MARK = /(?:^|[^\p{Alphabetic}\p{N}\p{M}])\p{M}/u;
/** Every Unicode control (Cc: C0, DEL, C1) and white space character (as Rust's char::is_control / is_whitespace). */
const ANY_CONTROL_OR_SPACE = /[\p{Cc}\p{White_Space}]/u;
/** Characters git forbids in ref names. */
const GIT_FORBIDDEN = /[~^:?*[\\]/;
/** Shell metacharacters: legal in git, refused (as by the controller) because nothing legitimate needs them. */
const SHELL_META = /[$`;&|<>(){}'"!]/;

/** Parse ALLOWED_HOSTS (comma separated) into a list of lowercase host names. */
export function parseAllowedHosts(raw) {
  const value = raw === undefined ? 'github.com' : raw;
  const hosts = value
    .split(',')
    .map((h) => h.trim().toLowerCase())
    .filter((h) => h.length > 0);
  if (hosts.length === 0) throw new InputError('ALLOWED_HOSTS', 'must list at least one host', 'empty');
  for (const h of hosts) {
    if (!/^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$/.test(h)) {
      throw new InputError('ALLOWED_HOSTS', `${JSON.stringify(h)} is not a host name`, 'bad_host');
    }
  }
  return hosts;
}

/**
 * Validate REPO_URL: `https://<allowed host>/<owner>/<repo>[.git]`, nothing else. Scheme and
 * host are case-insensitive (`HTTPS://GitHub.com/...` is accepted and canonicalised).
 * Returns { url, host, owner, repo } where url is the canonical form handed to git.
 * Error messages never echo the raw value (it could carry credentials).
 */
export function validateRepoUrl(raw, allowedHosts) {
  const V = 'REPO_URL';
  const bad = (reason, why) => {
    throw new InputError(V, reason, why);
  };
  if (raw === undefined || raw === '') bad('must be set', 'empty');
  if (Buffer.byteLength(raw, 'utf8') > MAX_URL_LEN) bad(`must be at most ${MAX_URL_LEN} bytes`, 'too_long');
  if (CONTROL_OR_SPACE.test(raw) || ANY_CONTROL_OR_SPACE.test(raw)) {
    bad('must not contain whitespace or control characters', 'control_or_space');
  }
  // eslint-disable-next-line no-control-regex
  if (/[^\u0000-\u007f]/.test(raw)) bad('must be ASCII (look-alike hosts are refused)', 'non_ascii');
  const scheme = /^([A-Za-z][A-Za-z0-9+.-]*):/.exec(raw);
  if (!scheme) bad('must be an https:// URL', 'not_https');
  if (scheme[1].toLowerCase() !== 'https') {
    bad(`scheme ${JSON.stringify(scheme[1])} is not allowed; must be https://`, 'not_https');
  }
  const rest = raw.slice(scheme[0].length);
  if (!rest.startsWith('//')) bad('must be an https:// URL', 'not_https');
  const afterSlashes = rest.slice(2);
  const authEnd = afterSlashes.search(/[/?#]/);
  const authority = authEnd === -1 ? afterSlashes : afterSlashes.slice(0, authEnd);
  const tail = authEnd === -1 ? '' : afterSlashes.slice(authEnd);
  if (authority.includes('@')) bad('must not contain credentials', 'credentials');
  if (authority.includes(':')) bad('must not contain a port', 'port');
  const host = authority.toLowerCase();
  if (host === '') bad('must name a host', 'no_host');
  if (!allowedHosts.includes(host)) {
    const shown = /^[a-z0-9.-]+$/.test(host) ? JSON.stringify(host) : 'the host';
    bad(`${shown} is not an allowed host (allowed: ${allowedHosts.join(', ')})`, 'host_not_allowed');
  }
  if (tail.includes('#')) bad('must not contain a fragment', 'fragment');
  if (tail.includes('?')) bad('must not contain a query', 'query');
  const m = /^\/([^/]+)\/([^/]+)$/.exec(tail);
  if (!m) bad('path must be exactly /owner/repo', 'path_shape');
  const owner = m[1];
  const repoWithSuffix = m[2];
  const repo = repoWithSuffix.endsWith('.git') ? repoWithSuffix.slice(0, -4) : repoWithSuffix;
  if (!NAME_SEGMENT.test(owner)) {
    bad('owner must be [A-Za-z0-9._-] and not start with "-" or "."', 'bad_owner');
  }
  if (!NAME_SEGMENT.test(repo)) {
    bad('repository name must be [A-Za-z0-9._-] and not start with "-" or "."', 'bad_repo');
  }
  return { url: `https://${host}/${owner}/${repoWithSuffix}`, host, owner, repo };
}

/**
 * Validate REPO_BRANCH: a git branch name (git check-ref-format --branch rules) of at most 255
 * bytes, without whitespace, control or invisible format characters, and without shell
 * metacharacters.
 */
export function validateBranch(raw) {
  const V = 'REPO_BRANCH';
  const b = raw === undefined ? 'main' : raw;
  const bad = (reason, why) => {
    throw new InputError(V, reason, why);
  };
  if (b.length === 0) bad('must not be empty', 'empty');
  if (Buffer.byteLength(b, 'utf8') > MAX_BRANCH_LEN) bad(`must be at most ${MAX_BRANCH_LEN} bytes`, 'too_long');
  if (CONTROL_OR_SPACE.test(b) || ANY_CONTROL_OR_SPACE.test(b)) {
    bad('must not contain whitespace or control characters', 'control_or_space');
  }
  if (FORMAT_CHAR.test(b)) {
    bad('must not contain invisible formatting characters (bidi controls, zero-width, BOM, tags)', 'format_char');
  }
  if (INVISIBLE.test(b)) bad('must not contain invisible characters (blank fillers, variation selectors)', 'invisible');
  if (LONE_MARK.test(b)) bad('must not contain a combining mark with no letter before it', 'lone_mark');
  const forbidden = GIT_FORBIDDEN.exec(b);
  if (forbidden) bad(`must not contain ${JSON.stringify(forbidden[0])}`, 'git_forbidden');
  const meta = SHELL_META.exec(b);
  if (meta) bad(`must not contain the shell metacharacter ${JSON.stringify(meta[0])}`, 'shell_meta');
  if (b.startsWith('-')) bad('must not start with "-"', 'leading_dash');
  if (b.startsWith('/')) bad('must not start with "/"', 'slash_edge');
  if (b.endsWith('/')) bad('must not end with "/"', 'slash_edge');
  if (b.includes('..')) bad('must not contain ".."', 'double_dot');
  if (b.includes('//')) bad('must not contain "//"', 'double_slash');
  if (b.includes('@{')) bad('must not contain "@{"', 'at_brace');
  if (b === '@') bad('must not be "@"', 'lone_at');
  if (b.endsWith('.')) bad('must not end with "."', 'trailing_dot');
  for (const component of b.split('/')) {
    if (component.startsWith('.')) bad('no path component may start with "."', 'dot_component');
    if (component.endsWith('.lock')) bad('no path component may end with ".lock"', 'lock_suffix');
  }
  return b;
}

/** Parse a duration like `500ms`, `5s`, `1m` into milliseconds (`min`ms (default 100)–1h). */
export function parseDuration(raw, variable, fallback, min = 100) {
  const value = raw === undefined || raw === '' ? fallback : raw;
  const m = /^(\d{1,7})(ms|s|m)$/.exec(value);
  if (!m) throw new InputError(variable, 'must look like 500ms, 5s or 1m', 'bad_duration');
  const ms = Number(m[1]) * { ms: 1, s: 1000, m: 60_000 }[m[2]];
  if (ms < min) throw new InputError(variable, `must be at least ${formatDuration(min)}`, 'bad_duration');
  if (ms > 3_600_000) throw new InputError(variable, 'must be at most 1h', 'bad_duration');
  return ms;
}

/** Milliseconds in the shortest exact form of the duration syntax: 300000 → `5m`, 1500 → `1500ms`. */
export function formatDuration(ms) {
  if (ms % 60_000 === 0) return `${ms / 60_000}m`;
  if (ms % 1000 === 0) return `${ms / 1000}s`;
  return `${ms}ms`;
}

export function parsePort(raw, variable = 'PORT', fallback = '3000') {
  const value = raw === undefined || raw === '' ? fallback : raw;
  if (!/^\d{1,5}$/.test(value) || Number(value) < 1 || Number(value) > 65535) {
    throw new InputError(variable, 'must be a TCP port number between 1 and 65535', 'bad_port');
  }
  return Number(value);
}

/** DEV_PORT: the dev server's internal port, default PORT + 1, never PORT itself. */
export function parseDevPort(raw, port) {
  const devPort = parsePort(raw, 'DEV_PORT', String(port < 65535 ? port + 1 : port - 1));
  if (devPort === port) throw new InputError('DEV_PORT', 'must differ from PORT (the runner listens there)', 'bad_port');
  return devPort;
}

/** Longest ROOT_DIRECTORY accepted, in UTF-8 bytes. */
export const MAX_ROOT_DIRECTORY_LEN = 255;

/**
 * Validate ROOT_DIRECTORY: the app's folder relative to the repository root (`apps/web`), or
 * null when unset / empty / `.`. No `..` segment, no leading `/`, no backslash, no control,
 * white space or invisible format characters, at most 255 bytes. Returns the normalised path.
 */
export function validateRootDirectory(raw) {
  const V = 'ROOT_DIRECTORY';
  const bad = (reason, why) => {
    throw new InputError(V, reason, why);
  };
  if (raw === undefined || raw === '' || raw === '.' || raw === './') return null;
  if (Buffer.byteLength(raw, 'utf8') > MAX_ROOT_DIRECTORY_LEN) bad(`must be at most ${MAX_ROOT_DIRECTORY_LEN} bytes`, 'too_long');
  if (CONTROL_OR_SPACE.test(raw) || ANY_CONTROL_OR_SPACE.test(raw)) {
    bad('must not contain whitespace or control characters', 'control_or_space');
  }
  if (FORMAT_CHAR.test(raw)) bad('must not contain invisible formatting characters', 'format_char');
  if (raw.startsWith('/')) bad('must be relative to the repository root (no leading "/")', 'absolute');
  if (raw.includes('\\')) bad('must use "/" between folders', 'backslash');
  const segments = raw.split('/').filter((s) => s !== '' && s !== '.');
  if (segments.includes('..')) bad('must not contain a ".." segment', 'double_dot');
  if (segments.length === 0) return null;
  return segments.join('/');
}

function absolutePath(env, variable, fallback) {
  const value = env[variable] === undefined || env[variable] === '' ? fallback : env[variable];
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f]/.test(value) || !path.isAbsolute(value)) {
    throw new InputError(variable, 'must be an absolute path', 'bad_path');
  }
  return value;
}

/** Where the control socket is: RUNNER_CONTROL_SOCKET, else $WORKDIR/.runner.sock. */
export function controlSocketPath(env) {
  const workdir = absolutePath(env, 'WORKDIR', '/app');
  return absolutePath(env, 'RUNNER_CONTROL_SOCKET', path.join(workdir, '.runner.sock'));
}

/** Defaults of the duration inputs. */
export const DEFAULT_SYNC_INTERVAL = '60s';
export const DEFAULT_INSTALL_TIMEOUT = '5m';
export const DEFAULT_FAILURE_LINGER = '20s';

/** Read and validate every input from an environment object. Throws InputError. */
export function readConfig(env) {
  const allowedHosts = parseAllowedHosts(env.ALLOWED_HOSTS);
  const repo = validateRepoUrl(env.REPO_URL, allowedHosts);
  const branch = validateBranch(env.REPO_BRANCH);
  const port = parsePort(env.PORT);
  const devPort = parseDevPort(env.DEV_PORT, port);
  const rootDirectory = validateRootDirectory(env.ROOT_DIRECTORY);
  const failureLingerMs = parseDuration(env.FAILURE_LINGER, 'FAILURE_LINGER', DEFAULT_FAILURE_LINGER, 0);
  const syncIntervalMs = parseDuration(env.SYNC_INTERVAL, 'SYNC_INTERVAL', DEFAULT_SYNC_INTERVAL);
  const installTimeoutMs = parseDuration(env.INSTALL_TIMEOUT, 'INSTALL_TIMEOUT', DEFAULT_INSTALL_TIMEOUT);
  const workdir = absolutePath(env, 'WORKDIR', '/app');
  const prebuiltDir = env.PREBUILT_DIR === undefined ? DEFAULT_PREBUILT_DIR : env.PREBUILT_DIR === '' ? null : absolutePath(env, 'PREBUILT_DIR', DEFAULT_PREBUILT_DIR);
  const controlSocket = controlSocketPath(env);
  const token = env.GIT_TOKEN === undefined || env.GIT_TOKEN === '' ? null : env.GIT_TOKEN;
  if (token !== null && CONTROL_OR_SPACE.test(token)) {
    throw new InputError('GIT_TOKEN', 'must not contain whitespace or control characters', 'control_or_space');
  }
  return {
    ...repo,
    branch,
    port,
    devPort,
    rootDirectory,
    failureLingerMs,
    syncIntervalMs,
    installTimeoutMs,
    workdir,
    prebuiltDir,
    controlSocket,
    token,
  };
}
