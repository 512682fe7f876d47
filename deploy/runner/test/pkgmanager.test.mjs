// Package manager detection, install / dev commands, pinning and the child environment.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';

import {
  childEnv,
  dependenciesChanged,
  detectPackageManager,
  devCommand,
  installCommand,
  pinnedPackageManager,
} from '../entrypoint.mjs';
import { workspaceDelegation } from '../lib/framework.mjs';
import { planTree } from '../lib/pkgmanager.mjs';

const files = (...names) => (f) => names.includes(f);

test('package manager from the root lockfile', () => {
  assert.deepEqual(detectPackageManager(files('pnpm-lock.yaml', 'package-lock.json')), { pm: 'pnpm', lockfile: 'pnpm-lock.yaml' });
  assert.deepEqual(detectPackageManager(files('yarn.lock')), { pm: 'yarn', lockfile: 'yarn.lock' });
  assert.deepEqual(detectPackageManager(files('package-lock.json')), { pm: 'npm', lockfile: 'package-lock.json' });
  assert.deepEqual(detectPackageManager(files('npm-shrinkwrap.json')), { pm: 'npm', lockfile: 'npm-shrinkwrap.json' });
  assert.deepEqual(detectPackageManager(files()), { pm: 'npm', lockfile: null });
});

test('install commands', () => {
  assert.deepEqual(installCommand({ pm: 'npm', lockfile: 'package-lock.json' }), ['npm', 'ci', '--no-audit', '--no-fund']);
  assert.deepEqual(installCommand({ pm: 'npm', lockfile: null }), ['npm', 'install', '--no-audit', '--no-fund', '--no-package-lock']);
  assert.deepEqual(installCommand({ pm: 'pnpm', lockfile: 'pnpm-lock.yaml' }), ['corepack', 'pnpm', 'install']);
  assert.deepEqual(installCommand({ pm: 'yarn', lockfile: 'yarn.lock' }), ['corepack', 'yarn', 'install']);
  assert.deepEqual(installCommand({ pm: 'pnpm', lockfile: 'pnpm-lock.yaml', spec: 'pnpm@9' }), ['corepack', 'pnpm@9', 'install']);
  assert.deepEqual(installCommand({ pm: 'yarn', lockfile: 'yarn.lock', spec: 'yarn@1' }), ['corepack', 'yarn@1', 'install']);
});

test('dev commands: dev, else start; each dev server gets its host and port arguments; others rely on the env', () => {
  const V = ['--host', '0.0.0.0', '--port', '3000'];
  assert.deepEqual(devCommand('npm', { dev: 'vite', start: 'x' }, 3000).argv, ['npm', 'run', 'dev', '--', ...V, '--strictPort']);
  assert.deepEqual(devCommand('pnpm', { dev: 'vite --open' }, 8080).argv, ['corepack', 'pnpm', 'run', 'dev', '--host', '0.0.0.0', '--port', '8080', '--strictPort']);
  assert.deepEqual(devCommand('yarn', { dev: 'vite' }, 3000).argv, ['corepack', 'yarn', 'run', 'dev', ...V, '--strictPort']);
  assert.deepEqual(devCommand('pnpm', { dev: 'vite' }, 3000, 'pnpm@9').argv, ['corepack', 'pnpm@9', 'run', 'dev', ...V, '--strictPort']);
  assert.deepEqual(devCommand('npm', { dev: 'svelte-kit sync && vite dev' }, 3000).framework, 'vite');
  assert.deepEqual(devCommand('npm', { dev: 'next dev --turbopack' }, 3000).argv, ['npm', 'run', 'dev', '--', '-H', '0.0.0.0', '-p', '3000']);
  assert.deepEqual(devCommand('npm', { dev: 'next' }, 3000).argv, ['npm', 'run', 'dev', '--', '-H', '0.0.0.0', '-p', '3000']);
  for (const [script, framework] of [
    ['ng serve', 'angular'],
    ['astro dev', 'astro'],
    ['react-router dev', 'react-router'],
    ['remix vite:dev', 'remix'],
    ['nuxt dev', 'nuxt'],
    ['nuxi dev --dotenv .env.local', 'nuxt'],
    ['webpack serve --mode development', 'webpack-dev-server'],
    ['webpack-dev-server', 'webpack-dev-server'],
    ['vue-cli-service serve', 'webpack-dev-server'],
  ]) {
    const d = devCommand('npm', { start: script }, 3000);
    assert.equal(d.framework, framework, script);
    assert.deepEqual(d.argv, ['npm', 'run', 'start', '--', ...V], script);
  }
  assert.deepEqual(devCommand('npm', { start: 'react-scripts start' }, 3000), { script: 'start', argv: ['npm', 'run', 'start'], framework: null });
  assert.deepEqual(devCommand('npm', { dev: 'node server.js' }, 3000).argv, ['npm', 'run', 'dev']);
  assert.deepEqual(devCommand('npm', { dev: 'vitest' }, 3000).argv, ['npm', 'run', 'dev']);
  assert.deepEqual(devCommand('npm', { dev: 'next build' }, 3000).argv, ['npm', 'run', 'dev']);
  assert.deepEqual(devCommand('npm', { dev: 'vite build' }, 3000).argv, ['npm', 'run', 'dev']);
  assert.deepEqual(devCommand('npm', { dev: 'vite preview' }, 3000).argv, ['npm', 'run', 'dev']);
  assert.deepEqual(devCommand('npm', { dev: 'vite && node server.js' }, 3000).argv, ['npm', 'run', 'dev'], 'flags only for the last command');
  assert.equal(devCommand('npm', { build: 'vite build' }, 3000), null);
  assert.equal(devCommand('npm', undefined, 3000), null);
  assert.equal(devCommand('npm', { dev: 42 }, 3000), null);
});

test('workspace scripts that delegate are recognised', () => {
  const cases = [
    ['npm run dev -w web', { workspace: 'web', script: 'dev' }],
    ['npm run dev --workspace=apps/web', { workspace: 'apps/web', script: 'dev' }],
    ['npm --workspace apps/web run start', { workspace: 'apps/web', script: 'start' }],
    ['npm --prefix apps/web run dev', { workspace: 'apps/web', script: 'dev' }],
    ['pnpm --filter web dev', { workspace: 'web', script: 'dev' }],
    ['pnpm -F web run dev', { workspace: 'web', script: 'dev' }],
    ['pnpm -C apps/web dev', { workspace: 'apps/web', script: 'dev' }],
    ['yarn workspace web dev', { workspace: 'web', script: 'dev' }],
    ['yarn workspace web run dev', { workspace: 'web', script: 'dev' }],
    ['cd apps/web && npm run dev', { workspace: 'apps/web', script: 'dev' }],
    ['cd apps/web && yarn dev', { workspace: 'apps/web', script: 'dev' }],
  ];
  for (const [script, want] of cases) assert.deepEqual(workspaceDelegation(script), want, script);
  for (const script of ['vite', 'npm run dev', 'turbo dev', 'npm run dev -w web; rm x', 'node server.js']) {
    assert.equal(workspaceDelegation(script), null, script);
  }
});

test('pnpm / yarn major version pinned from the lockfile when packageManager is absent', () => {
  assert.equal(pinnedPackageManager('pnpm', "lockfileVersion: '9.0'\n\nsettings:\n", {}), 'pnpm@9');
  assert.equal(pinnedPackageManager('pnpm', "lockfileVersion: '6.0'\n", {}), 'pnpm@8');
  assert.equal(pinnedPackageManager('pnpm', 'lockfileVersion: 6.1\n', {}), 'pnpm@8');
  assert.equal(pinnedPackageManager('pnpm', 'lockfileVersion: 5.4\n', {}), 'pnpm@7');
  assert.equal(pinnedPackageManager('pnpm', 'lockfileVersion: 5.3\n', {}), 'pnpm@6');
  assert.equal(pinnedPackageManager('pnpm', "lockfileVersion: '42.0'\n", {}), null);
  assert.equal(pinnedPackageManager('pnpm', 'garbage', {}), null);
  const berry = '# This file is generated by running "yarn install"\n\n__metadata:\n  version: 8\n  cacheKey: 10c0\n';
  const classic = '# THIS IS AN AUTOGENERATED FILE. DO NOT EDIT THIS FILE DIRECTLY.\n# yarn lockfile v1\n\n\nleft-pad@^1.3.0:\n';
  assert.equal(pinnedPackageManager('yarn', berry, {}), 'yarn@4');
  assert.equal(pinnedPackageManager('yarn', classic, {}), 'yarn@1');
  // packageManager wins (corepack reads it), npm is never pinned.
  assert.equal(pinnedPackageManager('pnpm', "lockfileVersion: '9.0'\n", { packageManager: 'pnpm@10.2.0' }), null);
  assert.equal(pinnedPackageManager('yarn', classic, { packageManager: 'yarn@3.6.0' }), null);
  assert.equal(pinnedPackageManager('npm', '{}', {}), null);
  assert.equal(pinnedPackageManager('pnpm', null, {}), null);
});

test('planTree reads a tree: script checked before any install, pinning applied', (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'plan-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const write = (f, s) => fs.writeFileSync(path.join(dir, f), s);
  assert.equal(planTree(dir, { devPort: 3000 }).error, 'no package.json in the repository root');
  write('package.json', '{ nope');
  assert.match(planTree(dir, { devPort: 3000 }).error, /^package\.json is not valid JSON/);
  write('package.json', 'null');
  assert.equal(planTree(dir, { devPort: 3000 }).error, 'package.json is not a JSON object');
  write('package.json', JSON.stringify({ scripts: { build: 'vite build' } }));
  assert.equal(planTree(dir, { devPort: 3000 }).error, 'package.json has neither a "dev" nor a "start" script');
  write('package.json', JSON.stringify({ scripts: { dev: 'vite' } }));
  write('pnpm-lock.yaml', "lockfileVersion: '9.0'\n");
  const plan = planTree(dir, { devPort: 3001 });
  assert.deepEqual(plan.install, ['corepack', 'pnpm@9', 'install']);
  assert.deepEqual(plan.dev.argv, ['corepack', 'pnpm@9', 'run', 'dev', '--host', '0.0.0.0', '--port', '3001', '--strictPort']);
  assert.equal(plan.dev.cwd, dir);
  assert.equal(plan.installDir, dir);
  write('package.json', JSON.stringify({ packageManager: 'pnpm@9.15.0', scripts: { dev: 'vite' } }));
  assert.deepEqual(planTree(dir, { devPort: 3001 }).install, ['corepack', 'pnpm', 'install']);
});

test('ROOT_DIRECTORY and workspaces: install at the root, run the app\'s script in its folder', (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'plan-ws-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const write = (f, s) => {
    fs.mkdirSync(path.dirname(path.join(dir, f)), { recursive: true });
    fs.writeFileSync(path.join(dir, f), typeof s === 'string' ? s : JSON.stringify(s));
  };
  write('package.json', { name: 'mono', private: true, workspaces: ['apps/*', 'packages/*'], scripts: { dev: 'npm run dev -w web' } });
  write('package-lock.json', '{}');
  write('apps/web/package.json', { name: 'web', scripts: { dev: 'vite' } });
  write('packages/ui/package.json', { name: 'ui' });
  // The root's dev script delegates: the app's script runs in its folder with its flags.
  const root = planTree(dir, { devPort: 4001 });
  assert.equal(root.installDir, dir);
  assert.deepEqual(root.install, ['npm', 'ci', '--no-audit', '--no-fund']);
  assert.equal(root.dev.cwd, path.join(dir, 'apps/web'));
  assert.equal(root.dev.delegatedTo, 'apps/web');
  assert.deepEqual(root.dev.argv, ['npm', 'run', 'dev', '--', '--host', '0.0.0.0', '--port', '4001', '--strictPort']);
  // ROOT_DIRECTORY inside the workspace: install at the root, run in the folder.
  const app = planTree(dir, { devPort: 4001, rootDirectory: 'apps/web' });
  assert.equal(app.installDir, dir);
  assert.equal(app.dev.cwd, path.join(dir, 'apps/web'));
  assert.equal(app.dev.framework, 'vite');
  // A folder that is not a workspace installs on its own.
  write('tools/site/package.json', { name: 'site', scripts: { start: 'node server.js' } });
  const own = planTree(dir, { devPort: 4001, rootDirectory: 'tools/site' });
  assert.equal(own.installDir, path.join(dir, 'tools/site'));
  assert.deepEqual(own.install, ['npm', 'install', '--no-audit', '--no-fund', '--no-package-lock']);
  assert.equal(planTree(dir, { devPort: 1, rootDirectory: 'apps/nope' }).error, 'no folder apps/nope (ROOT_DIRECTORY) in the repository');
  write('apps/empty/README.md', 'x');
  assert.equal(planTree(dir, { devPort: 1, rootDirectory: 'apps/empty' }).error, 'no package.json in apps/empty (ROOT_DIRECTORY)');
  write('apps/lib/package.json', { name: 'lib', scripts: { build: 'tsc' } });
  assert.equal(planTree(dir, { devPort: 1, rootDirectory: 'apps/lib' }).error, 'apps/lib/package.json has neither a "dev" nor a "start" script');
  // pnpm workspaces from pnpm-workspace.yaml, filter by package name.
  fs.rmSync(path.join(dir, 'package-lock.json'));
  write('package.json', { name: 'mono', private: true, scripts: { dev: 'pnpm --filter web dev' } });
  write('pnpm-workspace.yaml', "packages:\n  - 'apps/*' # apps\n  - packages/*\nonlyBuiltDependencies: []\n");
  write('pnpm-lock.yaml', "lockfileVersion: '9.0'\n");
  const p = planTree(dir, { devPort: 4001 });
  assert.equal(p.dev.cwd, path.join(dir, 'apps/web'));
  assert.deepEqual(p.dev.argv, ['corepack', 'pnpm@9', 'run', 'dev', '--host', '0.0.0.0', '--port', '4001', '--strictPort']);
  assert.equal(planTree(dir, { devPort: 4001, rootDirectory: 'apps/web' }).installDir, dir);
});

test('child environment binds 0.0.0.0:PORT, never carries the token, quiets telemetry', () => {
  const env = childEnv({ GIT_TOKEN: 't', FLY_APP_NAME: 'roseram-5aacab32', PATH: '/bin' }, 4000);
  assert.equal(env.HOST, '0.0.0.0');
  assert.equal(env.NG_CLI_ANALYTICS, 'false');
  assert.equal(env.GIT_TOKEN, undefined);
  assert.equal(env.PATH, '/bin');
  assert.equal(env.PORT, '4000');
  assert.equal(env.HOST, '0.0.0.0');
  assert.equal(env.HOSTNAME, '0.0.0.0');
  assert.equal(env.BROWSER, 'none');
  assert.equal(env.NEXT_TELEMETRY_DISABLED, '1');
  assert.equal(env.COREPACK_ENABLE_AUTO_PIN, '0');
  assert.equal(env.__VITE_ADDITIONAL_SERVER_ALLOWED_HOSTS, 'roseram-5aacab32.fly.dev');
  assert.equal(childEnv({}, 1).__VITE_ADDITIONAL_SERVER_ALLOWED_HOSTS, '.fly.dev');
  assert.equal(childEnv({ __VITE_ADDITIONAL_SERVER_ALLOWED_HOSTS: 'x.example' }, 1).__VITE_ADDITIONAL_SERVER_ALLOWED_HOSTS, 'x.example');
});

test('dependency change detection', () => {
  assert.equal(dependenciesChanged(['src/App.jsx']), false);
  assert.equal(dependenciesChanged([]), false);
  assert.equal(dependenciesChanged(['package.json']), true);
  assert.equal(dependenciesChanged(['packages/web/pnpm-lock.yaml']), true);
  assert.equal(dependenciesChanged(['yarn.lock', 'README.md']), true);
  assert.equal(dependenciesChanged(['vendor/node_modules/x/package.json']), false);
});
