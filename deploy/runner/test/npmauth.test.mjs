import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { cloneFailure } from '../lib/git.mjs';
import { npmAuth, projectRegistries, registryKeys } from '../lib/npmauth.mjs';
import { childEnv } from '../lib/pkgmanager.mjs';

test('NPM_TOKEN: a config file outside the repository for every registry, removed afterwards', () => {
  const project = fs.mkdtempSync(path.join(os.tmpdir(), 'npmauth-'));
  fs.writeFileSync(path.join(project, '.npmrc'), '@acme:registry=https://npm.acme.test/pkgs\nregistry=${NOT_A_URL}\n');
  const auth = npmAuth({ NPM_TOKEN: 'npm_tok_1234' }, [project]);
  const file = auth.env.NPM_CONFIG_USERCONFIG;
  assert.ok(!file.startsWith(project), 'outside the working tree');
  assert.equal(fs.statSync(file).mode & 0o777, 0o600);
  assert.equal(fs.readFileSync(file, 'utf8'), '//registry.npmjs.org/:_authToken=npm_tok_1234\n//npm.acme.test/pkgs/:_authToken=npm_tok_1234\n');
  assert.equal(auth.env.YARN_NPM_AUTH_TOKEN, 'npm_tok_1234');
  assert.ok(!fs.readFileSync(path.join(project, '.npmrc'), 'utf8').includes('npm_tok_1234'), 'the project is untouched');
  auth.cleanup();
  assert.ok(!fs.existsSync(file) && !fs.existsSync(path.dirname(file)));
  assert.deepEqual(npmAuth({}, [project]).env, {}, 'no token, nothing');
  assert.deepEqual(registryKeys(['http://127.0.0.1:4873', 'ftp://x', 'nope']), ['//127.0.0.1:4873/']);
  assert.deepEqual(projectRegistries('registry = https://r.test/\n; comment\n'), ['https://r.test/']);
});

test('the dev server never gets NPM_TOKEN or GIT_TOKEN', () => {
  const env = childEnv({ NPM_TOKEN: 'x', GIT_TOKEN: 'y', KEEP: 'z' }, 3001);
  assert.equal(env.NPM_TOKEN, undefined);
  assert.equal(env.GIT_TOKEN, undefined);
  assert.equal(env.KEEP, 'z');
});

test('a clone that needs access is told apart from a repository that is not there', () => {
  const url = 'https://github.com/acme/app';
  const denied = "fatal: could not read Username for 'https://github.com': terminal prompts disabled";
  assert.match(cloneFailure({ url, token: null }, denied), /needs access: add GIT_TOKEN/);
  const refused = "remote: Invalid username or password.\nfatal: Authentication failed for 'https://github.com/acme/app/'";
  assert.match(cloneFailure({ url, token: 't' }, refused), /refused GIT_TOKEN: renew GIT_TOKEN/);
  const missing = 'remote: Repository not found.\nfatal: repository \'https://github.com/acme/app/\' not found';
  assert.match(cloneFailure({ url, token: null }, missing), /not found; if it is private, add GIT_TOKEN/);
  assert.match(cloneFailure({ url, token: 't' }, missing), /not found, or GIT_TOKEN cannot read it/);
  assert.match(cloneFailure({ url, token: null }, 'fatal: unable to access: Could not resolve host'), /not reachable/);
});
