#!/usr/bin/env node
// fly-preview-controller runner: clone a GitHub repo at a branch, install its dependencies,
// run its dev server on 0.0.0.0:$PORT and keep the working tree in sync with the branch.
//
//   node entrypoint.mjs                     run the preview (inputs from the environment)
//   node entrypoint.mjs sync [--timeout 10s] ask the running runner to fetch now (one JSON line)
//   node entrypoint.mjs status               the preview's state (one JSON line; 0 = serving)
//
// Inputs come only from the environment (see README.md). Every external program is spawned
// with an argv array and no shell, so REPO_URL / REPO_BRANCH are never shell text. GIT_TOKEN
// reaches git only through GIT_CONFIG_* environment variables of the git child processes; it
// is never written to argv, .git/config, logs, or the install / dev server environment.
//
// Exit codes: 0 stopped by SIGTERM/SIGINT, 1 unexpected error, 2 invalid input, 3 clone failed,
// 4 install failed or nothing to run, 5 dev server never served at start, 6 install timed out,
// 7 crash loop (the dev server failed 5 times within 2 minutes after it once served).
// `sync`: 0 ok, 1 sync failed or timed out, 2 usage, 3 runner not reachable.
// `status`: 0 serving, 1 any other phase (or no answer), 2 usage, 3 runner not reachable.
//
// The code is in lib/ (plain ES modules, no npm dependencies; Node.js 20 or 22). This file only
// builds the context and dispatches; it re-exports the pure helpers the tests import.

import path from 'node:path';
import { pathToFileURL } from 'node:url';

import { statusCommand, syncCommand } from './lib/control.mjs';
import { createContext, run } from './lib/runner.mjs';

export {
  InputError,
  parseAllowedHosts,
  validateRepoUrl,
  validateBranch,
  parseDuration,
  formatDuration,
  parsePort,
  parseDevPort,
  validateRootDirectory,
  readConfig,
  controlSocketPath,
  FORMAT_CHAR_RANGES,
  INVISIBLE_RANGES,
} from './lib/config.mjs';
export {
  DEPENDENCY_FILES,
  dependenciesChanged,
  detectPackageManager,
  pinnedPackageManager,
  installCommand,
  devCommand,
  childEnv,
} from './lib/pkgmanager.mjs';
export { gitAuthEnv } from './lib/git.mjs';
export { makeRedactor, stripAnsi } from './lib/log.mjs';
export {
  EXIT_INVALID,
  EXIT_CLONE,
  EXIT_INSTALL,
  EXIT_DEV_CRASHLOOP,
  EXIT_INSTALL_TIMEOUT,
  EXIT_CRASHLOOP,
} from './lib/exitcodes.mjs';
export { createContext, main } from './lib/runner.mjs';

const invokedDirectly =
  process.argv[1] !== undefined && import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href;

if (invokedDirectly) {
  const [command, ...args] = process.argv.slice(2);
  if (command === 'sync' || command === 'status') {
    const fn = command === 'sync' ? syncCommand : statusCommand;
    fn({ args, env: process.env, stdout: process.stdout }).then((code) => {
      process.exitCode = code;
    });
  } else if (command === undefined) {
    run(createContext());
  } else {
    process.stderr.write(`runner: unknown command ${JSON.stringify(command.slice(0, 40))} (expected none, "sync" or "status")\n`);
    process.exitCode = 2;
  }
}
