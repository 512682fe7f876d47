// Why an install failed, in one sentence a person can act on, read from its output (pure):
// a private package that needs a token, a lockfile out of date, a missing environment variable.

const LOCKFILE_OF = { npm: 'package-lock.json', pnpm: 'pnpm-lock.yaml', yarn: 'yarn.lock' };

/** `@scope/name` from a registry URL (`@scope%2fname`) or a spec (`'@scope/name@^1'`). */
function scopedPackage(text) {
  const m = /(@[a-z0-9][\w.-]*)(?:\/|%2f)([a-z0-9][\w.-]*?)(?=@[\^~<>=*\d]|['"\s:]|$|@latest)/i.exec(text);
  return m ? `${m[1]}/${m[2]}` : null;
}

function registryRefusal(lines) {
  const status =
    /\b(E40[134]|40[134] (?:Not Found|Unauthorized|Forbidden)|ERR_PNPM_FETCH_40[134]|Request failed "40[134]|Not found)\b|is not in this registry|could not be found or you do not have permission/i;
  const hits = lines.filter((l) => status.test(l));
  if (hits.length === 0) return null;
  const code = /40[134]/.exec(hits.join(' '))?.[0] ?? '404';
  const scoped = hits.map(scopedPackage).find((n) => n !== null);
  if (scoped) {
    return (
      `${scoped} could not be downloaded from the registry (${code}): it looks like a private package, ` +
      'so set NPM_TOKEN (a read token for its registry) and commit an .npmrc that uses ${NPM_TOKEN}'
    );
  }
  if (code === '401' || code === '403') {
    return `the registry refused the install (${code}): set NPM_TOKEN to a token that can read the project's packages`;
  }
  const unscoped = hits
    .map((l) => /'([^'@\s][^'\s]*?)@[^'\s]*' (?:is not in this registry|could not be found)/.exec(l)?.[1])
    .find((n) => n);
  return unscoped ? `${unscoped} is not in the registry (404): check its name and version in package.json` : null;
}

function lockfileOutOfDate(lines, pm) {
  const text = lines.join('\n');
  const stale =
    /can only install packages when your package\.json and (?:package-lock\.json|npm-shrinkwrap\.json)[\s\S]*?in sync/i.test(text) ||
    /Missing: \S+ from lock file/i.test(text) ||
    /ERR_PNPM_OUTDATED_LOCKFILE|ERR_PNPM_LOCKFILE_CONFIG_MISMATCH/.test(text) ||
    /Your lockfile needs to be updated|YN0028/.test(text);
  if (!stale) return null;
  const lockfile = LOCKFILE_OF[pm] ?? 'the lockfile';
  return `${lockfile} is out of date with package.json: run \`${pm} install\` and commit ${lockfile}`;
}

const ENV_HINT = /environment variable|env(?:ironment)? var|process\.env|is not set|must be set|is required|is missing|not defined/i;
const NOT_A_VARIABLE = new Set(['ERR', 'ERROR', 'NPM', 'WARN', 'ENV', 'GET', 'POST', 'HTTP', 'HTTPS', 'JSON', 'API', 'NODE', 'THE', 'CODE', 'ELIFECYCLE']);

/** Lines that only echo a command (npm's `> script` banner, `npm error command ...`). */
const ECHOED_COMMAND = /^\s*>|npm (?:error|ERR!) command|\bsh -c\b/;
const EXPLICIT = /(?:missing|required|undefined|not set|not defined)\W+(?:(?:environment|env)\s+var(?:iable)?\W+)?([A-Z][A-Z0-9_]{2,})\b/i;

function missingVariable(lines) {
  const candidates = lines.filter((l) => ENV_HINT.test(l) && !ECHOED_COMMAND.test(l));
  for (const line of candidates) {
    const name = EXPLICIT.exec(line)?.[1];
    if (name && name === name.toUpperCase() && !NOT_A_VARIABLE.has(name)) {
      return `the install needs the environment variable ${name} ("${line.trim().slice(0, 120)}"): set ${name} for the preview`;
    }
  }
  for (const line of candidates) {
    const named = /process\.env\.([A-Z_][A-Z0-9_]*)/.exec(line)?.[1];
    const candidates = named ? [named] : (line.match(/\b[A-Z][A-Z0-9]*_[A-Z0-9_]+\b|\b[A-Z]{3,}\b/g) ?? []);
    const name = candidates.find((c) => !NOT_A_VARIABLE.has(c) && !/^E[A-Z]+$/.test(c));
    if (name) return `the install needs the environment variable ${name} ("${line.trim().slice(0, 120)}"): set ${name} for the preview`;
  }
  return null;
}

/** One sentence naming the cause of a failed install, or null when the output shows none of the known ones. */
export function installFailureCause(lines, pm = 'npm') {
  return registryRefusal(lines) ?? lockfileOutOfDate(lines, pm) ?? missingVariable(lines);
}
