// Package manager and dev server detection (pure, apart from reading files of a tree).

import fs from 'node:fs';
import path from 'node:path';

import { detectFramework, workspaceDelegation } from './framework.mjs';
import { resolveWorkspace, workspaceFolders, workspacePatterns } from './workspace.mjs';

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
 * argv of the dev server command: the `dev` script, else `start` (or `name` when given), plus
 * the arguments that bind it to 0.0.0.0:`port` for dev servers that ignore HOST / PORT
 * (framework.mjs). Returns null when the package has no such script. `spec` is the pinned
 * corepack spec, if any.
 */
export function devCommand(pm, scripts, port, spec = null, name = devScriptName(scripts)) {
  if (name === null || typeof scripts?.[name] !== 'string') return null;
  const framework = detectFramework(scripts[name], port);
  const extra = framework ? framework.args : [];
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
  return { script: name, argv, framework: framework?.name ?? null };
}

/** Environment of install and dev server processes: PORT is the dev server's (DEV_PORT), HOST 0.0.0.0; never the token. */
export function childEnv(baseEnv, port) {
  const env = { ...baseEnv };
  delete env.GIT_TOKEN;
  Object.assign(env, {
    PORT: String(port),
    HOST: '0.0.0.0',
    HOSTNAME: '0.0.0.0',
    BROWSER: 'none',
    NEXT_TELEMETRY_DISABLED: '1',
    NUXT_TELEMETRY_DISABLED: '1',
    ASTRO_TELEMETRY_DISABLED: '1',
    NG_CLI_ANALYTICS: 'false',
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

/** package.json of a folder: { pkg } or { error } (one line). */
export function readPackageJson(dir, where = 'the repository root') {
  const file = path.join(dir, 'package.json');
  if (!fs.existsSync(file)) return { error: `no package.json in ${where}` };
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
 * Where to install: the repository root when it declares workspaces that include the app's
 * folder `rel`, else the app's folder.
 */
function installRoot(treeRoot, rel) {
  if (rel === null) return treeRoot;
  const rootPkg = readPackageJson(treeRoot).pkg ?? null;
  const patterns = workspacePatterns(treeRoot, rootPkg);
  return patterns.length > 0 && workspaceFolders(treeRoot, patterns).includes(rel) ? treeRoot : path.join(treeRoot, rel);
}

/**
 * The script to run and its folder: the app's `dev`/`start`, or, when that script only delegates
 * to a workspace's script (`npm run dev -w web`, ...), that script in that workspace's folder,
 * so the dev server gets its host/port arguments. { dir, pkg, name, delegatedTo } or null.
 */
function scriptToRun(appDir, installDir, pkg) {
  const name = devScriptName(pkg.scripts);
  if (name === null) return null;
  const d = workspaceDelegation(pkg.scripts[name]);
  if (d === null) return { dir: appDir, pkg, name, delegatedTo: null };
  const rootPkg = readPackageJson(installDir).pkg ?? null;
  let folder = resolveWorkspace(installDir, workspacePatterns(installDir, rootPkg), d.workspace);
  let dir = folder === null ? null : path.join(installDir, folder);
  if (dir === null && fs.existsSync(path.join(appDir, d.workspace, 'package.json'))) {
    dir = path.join(appDir, d.workspace);
    folder = path.relative(installDir, dir).split(path.sep).join('/');
  }
  const target = dir === null ? {} : readPackageJson(dir);
  if (!target.pkg || typeof target.pkg.scripts?.[d.script] !== 'string') return { dir: appDir, pkg, name, delegatedTo: null };
  return { dir, pkg: target.pkg, name: d.script, delegatedTo: folder };
}

/**
 * Everything needed to install and run a tree: { pkg, pm, lockfile, spec, install, installDir,
 * dev: { script, argv, cwd, framework, delegatedTo } } or { error } when the app's folder,
 * its package.json or a `dev`/`start` script is missing. `devPort` is where the dev server must
 * listen; `rootDirectory` the app's folder in the repository (ROOT_DIRECTORY) or null.
 */
export function planTree(treeRoot, { devPort, rootDirectory = null }) {
  const appDir = rootDirectory === null ? treeRoot : path.join(treeRoot, rootDirectory);
  const where = rootDirectory === null ? 'the repository root' : `${rootDirectory} (ROOT_DIRECTORY)`;
  if (rootDirectory !== null && !fs.existsSync(appDir)) return { error: `no folder ${rootDirectory} (ROOT_DIRECTORY) in the repository` };
  const read = readPackageJson(appDir, where);
  if (read.error) return { error: read.error };
  const installDir = installRoot(treeRoot, rootDirectory);
  const installPkg = installDir === appDir ? read.pkg : (readPackageJson(installDir).pkg ?? {});
  const detected = detectPackageManager((f) => fs.existsSync(path.join(installDir, f)));
  const spec = pinnedPackageManager(
    detected.pm,
    detected.lockfile ? readHead(path.join(installDir, detected.lockfile)) : null,
    installPkg,
  );
  const run = scriptToRun(appDir, installDir, read.pkg);
  const dev = run === null ? null : devCommand(detected.pm, run.pkg.scripts, devPort, spec, run.name);
  if (dev === null) {
    const file = rootDirectory === null ? 'package.json' : `${rootDirectory}/package.json`;
    return { error: `${file} has neither a "dev" nor a "start" script` };
  }
  return {
    pkg: read.pkg,
    ...detected,
    spec,
    installDir,
    install: installCommand({ ...detected, spec }),
    dev: { ...dev, cwd: run.dir, delegatedTo: run.delegatedTo },
  };
}
