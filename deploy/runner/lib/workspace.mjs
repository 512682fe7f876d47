// npm / pnpm / yarn workspaces of a tree: whether the repository root declares them, the
// packages' folders, and which folder a workspace name or path means.

import fs from 'node:fs';
import path from 'node:path';

/** Workspace patterns of the root: package.json `workspaces` (array or {packages}) or pnpm-workspace.yaml. */
export function workspacePatterns(rootDir, rootPkg) {
  const ws = rootPkg?.workspaces;
  if (Array.isArray(ws)) return ws.filter((p) => typeof p === 'string');
  if (ws && typeof ws === 'object' && Array.isArray(ws.packages)) return ws.packages.filter((p) => typeof p === 'string');
  const yaml = path.join(rootDir, 'pnpm-workspace.yaml');
  if (!fs.existsSync(yaml)) return [];
  return parsePnpmWorkspace(fs.readFileSync(yaml, 'utf8'));
}

/** The `packages:` list of a pnpm-workspace.yaml (block list of scalars; enough for real files). */
export function parsePnpmWorkspace(text) {
  const out = [];
  let inPackages = false;
  for (const raw of text.split('\n')) {
    const line = raw.replace(/\s+#.*$/, '');
    if (/^packages:\s*$/.test(line)) {
      inPackages = true;
      continue;
    }
    if (!inPackages) continue;
    const m = /^\s+-\s*['"]?([^'"]+?)['"]?\s*$/.exec(line);
    if (m) out.push(m[1]);
    else if (/^\S/.test(line)) inPackages = false;
  }
  return out;
}

function subdirs(dir) {
  try {
    return fs
      .readdirSync(dir, { withFileTypes: true })
      .filter((e) => e.isDirectory() && e.name !== 'node_modules' && !e.name.startsWith('.'))
      .map((e) => path.join(dir, e.name));
  } catch {
    return [];
  }
}

/** Folders (relative, `/`-separated) matched by the patterns that hold a package.json. */
export function workspaceFolders(rootDir, patterns) {
  const found = new Set();
  const excluded = new Set(patterns.filter((p) => p.startsWith('!')).map((p) => p.slice(1).replace(/\/$/, '')));
  for (const p of patterns.filter((x) => !x.startsWith('!'))) {
    const clean = p.replace(/^\.\//, '').replace(/\/$/, '');
    let dirs;
    if (clean.endsWith('/**')) {
      const base = path.join(rootDir, clean.slice(0, -3));
      dirs = subdirs(base).flatMap((d) => [d, ...subdirs(d)]);
    } else if (clean.endsWith('/*')) {
      dirs = subdirs(path.join(rootDir, clean.slice(0, -2)));
    } else {
      dirs = [path.join(rootDir, clean)];
    }
    for (const d of dirs) {
      const rel = path.relative(rootDir, d).split(path.sep).join('/');
      if (!rel.startsWith('..') && !excluded.has(rel) && fs.existsSync(path.join(d, 'package.json'))) found.add(rel);
    }
  }
  return [...found];
}

function packageName(dir) {
  try {
    return JSON.parse(fs.readFileSync(path.join(dir, 'package.json'), 'utf8')).name ?? null;
  } catch {
    return null;
  }
}

/**
 * The folder (relative to the root) a workspace reference means: a package name (pnpm filters
 * like `web...` or `./apps/web` included) or a folder; null when nothing matches.
 */
export function resolveWorkspace(rootDir, patterns, ref) {
  const want = ref.replace(/^\.\//, '').replace(/\.\.\.$/, '').replace(/^\{(.*)\}$/, '$1').replace(/\/$/, '');
  const folders = workspaceFolders(rootDir, patterns);
  const byPath = folders.find((f) => f === want);
  if (byPath) return byPath;
  const byName = folders.find((f) => packageName(path.join(rootDir, f)) === want);
  if (byName) return byName;
  if (fs.existsSync(path.join(rootDir, want, 'package.json')) && !want.split('/').includes('..')) return want;
  return null;
}
