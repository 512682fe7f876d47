// Dependency trees installed into the image for starter templates (templates.json), keyed by
// lockfile: a project whose package-lock.json matches one byte for byte is checked out into that
// tree (its .git moved there, tracked files written over it) and `npm ci` is skipped. Anything
// else (another lockfile, pnpm or yarn, ROOT_DIRECTORY, workspaces) installs as usual.
//
// Moving node_modules, copying it or unpacking it at start costs as much CPU as installing;
// moving the small .git into the tree that holds node_modules costs nothing.

import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

/** Where the image keeps the prebuilt trees (PREBUILT_DIR overrides it; empty disables). */
export const DEFAULT_PREBUILT_DIR = '/opt/prebuilt';
/** Written into a tree only after its install succeeded: a tree without it never matches. */
export const MARKER = '.prebuilt.json';

/** The key of a dependency tree: sha256 over the package manager and the lockfile's exact bytes. */
export function prebuiltKey(pm, lockfileBytes) {
  return crypto.createHash('sha256').update(`${pm}\n`).update(lockfileBytes).digest('hex');
}

/**
 * The prebuilt tree for `plan` (planTree's result for `treeRoot`), or null: only npm with a
 * package-lock.json at the repository root qualifies, and the tree must carry its marker, whose
 * recorded key must equal the key computed from this lockfile.
 */
export function findPrebuilt(prebuiltDir, treeRoot, plan) {
  if (!prebuiltDir || plan.pm !== 'npm' || plan.lockfile !== 'package-lock.json' || plan.installDir !== treeRoot) return null;
  let key;
  try {
    key = prebuiltKey('npm', fs.readFileSync(path.join(treeRoot, 'package-lock.json')));
  } catch {
    return null;
  }
  const dir = path.join(prebuiltDir, key);
  try {
    const marker = JSON.parse(fs.readFileSync(path.join(dir, MARKER), 'utf8'));
    if (marker.key !== key || !fs.statSync(path.join(dir, 'node_modules')).isDirectory()) return null;
    return { dir, key, template: typeof marker.template === 'string' ? marker.template : null };
  } catch {
    return null;
  }
}

/**
 * Make `prebuilt.dir` the working tree of the clone in `cloneDir`: move its .git there, write the
 * tracked files (`git reset --hard HEAD`), remove the clone. node_modules (untracked) stays.
 * `reset(dir)` is git's reset (null or the one-line reason). Null on success, else the reason;
 * on failure the clone is left as it was (moved back when possible).
 */
export async function adoptPrebuilt(cloneDir, prebuilt, reset) {
  const from = path.join(cloneDir, '.git');
  const to = path.join(prebuilt.dir, '.git');
  try {
    fs.rmSync(to, { recursive: true, force: true });
    fs.renameSync(from, to);
  } catch (e) {
    return `cannot move the clone into ${prebuilt.dir} (${e.code ?? e.message})`;
  }
  const why = await reset(prebuilt.dir);
  if (why !== null) {
    try {
      fs.renameSync(to, from);
    } catch {
      // the clone is gone either way; the caller installs in a fresh clone
    }
    return why;
  }
  fs.rmSync(cloneDir, { recursive: true, force: true });
  return null;
}
