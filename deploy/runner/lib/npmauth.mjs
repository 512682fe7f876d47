// NPM_TOKEN for an install: an npm config file outside the repository (mode 0600, removed once
// the install ends) that authenticates the default registry and every registry the project's
// .npmrc names; yarn berry gets it as YARN_NPM_AUTH_TOKEN. The token is never in argv or the
// working tree, and the dev server's environment never has it (pkgmanager.childEnv).

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const DEFAULT_REGISTRY = 'https://registry.npmjs.org/';

/** `//host/path/` keys for npm's per-registry auth settings, from registry URLs. */
export function registryKeys(urls) {
  const keys = [];
  for (const u of urls) {
    try {
      const url = new URL(u);
      if (url.protocol !== 'https:' && url.protocol !== 'http:') continue;
      const p = url.pathname.endsWith('/') ? url.pathname : `${url.pathname}/`;
      keys.push(`//${url.host}${p}`);
    } catch {
      // not a URL: skipped
    }
  }
  return [...new Set(keys)];
}

/** Registry URLs a project's .npmrc text names (`registry=`, `@scope:registry=`). */
export function projectRegistries(npmrc) {
  const out = [];
  for (const line of npmrc.split(/\r?\n/)) {
    const m = /^\s*(?:@[\w.-]+:)?registry\s*=\s*(\S+)\s*$/i.exec(line);
    if (m && !m[1].includes('${')) out.push(m[1]);
  }
  return out;
}

function readText(file) {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch {
    return '';
  }
}

/**
 * The install's extra environment and a cleanup function, for `env.NPM_TOKEN` (none without
 * it). `dirs`: where the project's .npmrc files may be (install dir, app dir).
 */
export function npmAuth(env, dirs) {
  const token = env.NPM_TOKEN;
  if (typeof token !== 'string' || token === '') return { env: {}, cleanup: () => {} };
  const registries = [env.NPM_CONFIG_REGISTRY || env.npm_config_registry || DEFAULT_REGISTRY];
  for (const d of dirs) registries.push(...projectRegistries(readText(path.join(d, '.npmrc'))));
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'runner-npm-'));
  const file = path.join(dir, 'npmrc');
  const lines = registryKeys(registries).map((k) => `${k}:_authToken=${token}`);
  fs.writeFileSync(file, `${lines.join('\n')}\n`, { mode: 0o600 });
  return {
    env: { NPM_CONFIG_USERCONFIG: file, npm_config_userconfig: file, YARN_NPM_AUTH_TOKEN: token },
    cleanup: () => fs.rmSync(dir, { recursive: true, force: true }),
  };
}
