// Package manager and dev server detection (pure, apart from reading files of a tree).

import fs from 'node:fs';
import path from 'node:path';

/** Files whose change between two commits means "install in a new tree and switch to it". */
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

/**
 * The corepack spec (`pnpm@9`, `yarn@1`, ...) that pins the package manager's major version
 * from the lockfile format, or null to let corepack decide. Only used when package.json has no
 * `packageManager` field (corepack honours that field itself).
 *
 * pnpm-lock.yaml `lockfileVersion`: 9.x → pnpm@9, 6.x → pnpm@8, 5.4 → pnpm@7, 5.3 → pnpm@6.
 * yarn.lock with `__metadata:` (Berry) → yarn@4, else (classic v1) → yarn@1.
 */
export function pinnedPackageManager(pm, lockfileHead, pkg) {
  if (pkg && typeof pkg.packageManager === 'string' && pkg.packageManager.trim() !== '') return null;
  if (typeof lockfileHead !== 'string') return null;
  if (pm === 'pnpm') {
    const m = /^lockfileVersion:\s*['"]?(\d+)(?:\.(\d+))?/m.exec(lockfileHead);
    if (!m) return null;
    const major = Number(m[1]);
    const minor = m[2] === undefined ? 0 : Number(m[2]);
    if (major === 9) return 'pnpm@9';
    if (major === 6) return 'pnpm@8';
    if (major === 5 && minor >= 4) return 'pnpm@7';
    if (major === 5) return 'pnpm@6';
    return null;
  }
  if (pm === 'yarn') return /^__metadata:/m.test(lockfileHead) ? 'yarn@4' : 'yarn@1';
  return null;
}

/** argv of the install command. `spec` is the pinned corepack spec, if any. */
export function installCommand({ pm, lockfile, spec = null }) {
  switch (pm) {
    case 'pnpm':
      return ['corepack', spec ?? 'pnpm', 'install'];
    case 'yarn':
      return ['corepack', spec ?? 'yarn', 'install'];
    default:
      return lockfile
        ? ['npm', 'ci', '--no-audit', '--no-fund']
        : // --no-package-lock: do not leave an untracked package-lock.json in the tree, which
          // would switch later installs to `npm ci` against a lockfile the repo does not have.
          ['npm', 'install', '--no-audit', '--no-fund', '--no-package-lock'];
  }
}

/** Name of the script the dev server runs: `dev`, else `start`, else null. */
export function devScriptName(scripts) {
  const s = scripts && typeof scripts === 'object' ? scripts : {};
  return typeof s.dev === 'string' ? 'dev' : typeof s.start === 'string' ? 'start' : null;
}

/**
 * argv of the dev server command: the `dev` script, else `start`, plus host/port arguments for
 * dev servers that ignore the HOST/PORT environment (Vite, Next.js). Returns null when the
 * package has neither script. `spec` is the pinned corepack spec, if any.
 */
export function devCommand(pm, scripts, port, spec = null) {
  const name = devScriptName(scripts);
  if (name === null) return null;
  const script = scripts[name];
  let extra = [];
  if (/(^|[\s;&|(])vite(?=\s|$)/.test(script)) {
    extra = ['--host', '0.0.0.0', '--port', String(port)];
  } else if (/(^|[\s;&|(])next\s+dev(?=\s|$)/.test(script) || /^\s*next\s*$/.test(script)) {
    extra = ['-H', '0.0.0.0', '-p', String(port)];
  }
  let argv;
  switch (pm) {
    case 'pnpm':
      argv = ['corepack', spec ?? 'pnpm', 'run', name, ...extra];
      break;
    case 'yarn':
      argv = ['corepack', spec ?? 'yarn', 'run', name, ...extra];
      break;
    default:
      argv = ['npm', 'run', name, ...(extra.length > 0 ? ['--', ...extra] : [])];
  }
  return { script: name, argv };
}

/** Environment of install and dev server processes: binds 0.0.0.0:PORT, never the token. */
export function childEnv(baseEnv, port) {
  const env = { ...baseEnv };
  delete env.GIT_TOKEN;
  Object.assign(env, {
    PORT: String(port),
    HOST: '0.0.0.0',
    HOSTNAME: '0.0.0.0',
    BROWSER: 'none',
    NEXT_TELEMETRY_DISABLED: '1',
    COREPACK_ENABLE_DOWNLOAD_PROMPT: '0',
    // Never let corepack write a "packageManager" field into the user's package.json.
    COREPACK_ENABLE_AUTO_PIN: '0',
    npm_config_update_notifier: 'false',
    npm_config_fund: 'false',
    npm_config_audit: 'false',
  });
  // Vite (>= 6.0.9, 5.4.12, 4.5.6) answers 403 "Blocked request" to Host headers other than
  // localhost, *.localhost, IP literals and its allowedHosts. This variable appends ONE entry to
  // allowedHosts (a leading "." allows every subdomain); there is no environment or CLI switch
  // for `allowedHosts: true`. Health checks must therefore send `Host: localhost`.
  if (env.__VITE_ADDITIONAL_SERVER_ALLOWED_HOSTS === undefined) {
    env.__VITE_ADDITIONAL_SERVER_ALLOWED_HOSTS = env.FLY_APP_NAME
      ? `${env.FLY_APP_NAME}.fly.dev`
      : '.fly.dev';
  }
  return env;
}

/** package.json of a tree: { pkg } or { error } (one line). */
export function readPackageJson(dir) {
  const file = path.join(dir, 'package.json');
  if (!fs.existsSync(file)) return { error: 'no package.json in the repository root' };
  try {
    const pkg = JSON.parse(fs.readFileSync(file, 'utf8'));
    if (pkg === null || typeof pkg !== 'object' || Array.isArray(pkg)) {
      return { error: 'package.json is not a JSON object' };
    }
    return { pkg };
  } catch (e) {
    return { error: `package.json is not valid JSON (${e.message})` };
  }
}

function readHead(file, bytes = 8192) {
  let fd;
  try {
    fd = fs.openSync(file, 'r');
    const buf = Buffer.alloc(bytes);
    const n = fs.readSync(fd, buf, 0, bytes, 0);
    return buf.subarray(0, n).toString('utf8');
  } catch {
    return null;
  } finally {
    if (fd !== undefined) fs.closeSync(fd);
  }
}

/**
 * Everything needed to install and run a tree: { pkg, pm, lockfile, spec, install, dev } or
 * { error } when package.json is missing/invalid or has neither a `dev` nor a `start` script.
 */
export function planTree(dir, port) {
  const read = readPackageJson(dir);
  if (read.error) return { error: read.error };
  const detected = detectPackageManager((f) => fs.existsSync(path.join(dir, f)));
  const spec = pinnedPackageManager(
    detected.pm,
    detected.lockfile ? readHead(path.join(dir, detected.lockfile)) : null,
    read.pkg,
  );
  const dev = devCommand(detected.pm, read.pkg.scripts, port, spec);
  if (dev === null) return { error: 'package.json has neither a "dev" nor a "start" script' };
  return { pkg: read.pkg, ...detected, spec, install: installCommand({ ...detected, spec }), dev };
}
