// Which dev server a package script starts, the arguments that make it listen on a reachable
// address and the runner's port, and scripts that only delegate to a workspace's script (pure).

/**
 * Dev servers that ignore HOST / PORT, each with the arguments that bind them, checked in
 * order against the last command of the script (arguments appended to a script land there).
 */
const FRAMEWORKS = [
  { name: 'next', re: /(?:^|[\s(])next(?:\s+dev)?(?:\s+[^\s;&|]+)*\s*$/, args: (p) => ['-H', '0.0.0.0', '-p', p] },
  { name: 'angular', re: /(?:^|[\s(])ng\s+(?:serve|s|dev)\b/, args: (p) => ['--host', '0.0.0.0', '--port', p] },
  { name: 'astro', re: /(?:^|[\s(])astro\s+(?:dev|start)\b/, args: (p) => ['--host', '0.0.0.0', '--port', p] },
  { name: 'react-router', re: /(?:^|[\s(])react-router\s+dev\b/, args: (p) => ['--host', '0.0.0.0', '--port', p] },
  { name: 'remix', re: /(?:^|[\s(])remix\s+vite:dev\b/, args: (p) => ['--host', '0.0.0.0', '--port', p] },
  { name: 'nuxt', re: /(?:^|[\s(])nux[ti]\s+dev\b/, args: (p) => ['--host', '0.0.0.0', '--port', p] },
  {
    name: 'webpack-dev-server',
    re: /(?:^|[\s(])(?:webpack(?:-cli)?\s+(?:serve|server|s)\b|webpack-dev-server\b|vue-cli-service\s+serve\b)/,
    args: (p) => ['--host', '0.0.0.0', '--port', p],
  },
  {
    name: 'vite',
    re: /(?:^|[\s(])vite(?:\s+(?:dev|serve))?(?=\s|$)(?!\s+(?:build|preview|optimize)\b)/,
    args: (p) => ['--host', '0.0.0.0', '--port', p, '--strictPort'],
  },
];

/** The last command of a shell script line (after the last `&&`, `||` or `;`). */
export function lastCommand(script) {
  const parts = String(script).split(/&&|\|\||;/);
  return parts[parts.length - 1].trim();
}

/**
 * The dev server a script runs: { name, args } with the arguments to append (binding
 * 0.0.0.0:`port`), or null for anything else (plain servers get PORT / HOST in the environment).
 */
export function detectFramework(script, port) {
  if (typeof script !== 'string') return null;
  const last = lastCommand(script);
  if (/(?:^|\s)(?:vite|next)\s+build\b/.test(last) || /(?:^|\s)vitest\b/.test(last)) return null;
  if (/^\s*next\s+(?:build|start|lint|info)\b/.test(last)) return null;
  for (const f of FRAMEWORKS) {
    if (f.re.test(last)) return { name: f.name, args: f.args(String(port)) };
  }
  return null;
}

function shellWords(command) {
  return (command.match(/"[^"]*"|'[^']*'|\S+/g) ?? []).map((w) => w.replace(/^["']|["']$/g, ''));
}

/** `--flag value` / `--flag=value` / `-f value` from a word list, or null. */
function option(words, names) {
  for (let i = 0; i < words.length; i += 1) {
    for (const n of names) {
      if (words[i] === n && i + 1 < words.length) return words[i + 1];
      if (n.startsWith('--') && words[i].startsWith(`${n}=`)) return words[i].slice(n.length + 1);
    }
  }
  return null;
}

const VALUE_FLAGS = new Set(['-w', '--workspace', '--prefix', '--filter', '-F', '-C', '--dir']);

/** Words that are neither flags nor values of the value-taking flags above. */
function positional(words) {
  const out = [];
  for (let i = 0; i < words.length; i += 1) {
    if (VALUE_FLAGS.has(words[i])) i += 1;
    else if (!words[i].startsWith('-')) out.push(words[i]);
  }
  return out;
}

/**
 * A script that only runs another package's script: `npm run dev -w web`,
 * `npm --workspace=apps/web run dev`, `npm --prefix apps/web run dev`, `pnpm --filter web dev`,
 * `pnpm -C apps/web dev`, `yarn workspace web dev`, `cd apps/web && npm run dev`. Returns
 * { workspace, script } (workspace: a package name or a folder) or null.
 */
export function workspaceDelegation(script) {
  if (typeof script !== 'string') return null;
  const parts = script.split('&&').map((s) => s.trim());
  let cdDir = null;
  if (parts.length === 2 && /^cd\s+\S+$/.test(parts[0])) cdDir = shellWords(parts[0])[1];
  else if (parts.length !== 1 || /[;|]/.test(script)) return null;
  const words = shellWords(parts[parts.length - 1]);
  const [tool, ...rest] = words;
  const pos = positional(rest);
  let workspace = null;
  let name = null;
  if (tool === 'npm') {
    workspace = option(rest, ['-w', '--workspace', '--prefix']);
    const i = pos.findIndex((w) => w === 'run' || w === 'run-script');
    name = i === -1 ? (pos[0] === 'start' ? 'start' : null) : pos[i + 1];
  } else if (tool === 'pnpm') {
    workspace = option(rest, ['--filter', '-F', '-C', '--dir']);
    name = pos[0] === 'run' ? pos[1] : pos[0];
  } else if (tool === 'yarn' && pos[0] === 'workspace') {
    workspace = pos[1];
    name = pos[2] === 'run' ? pos[3] : pos[2];
  } else if (tool === 'yarn' || tool === 'npm') {
    name = null;
  }
  if (cdDir !== null && workspace === null && (tool === 'npm' || tool === 'pnpm' || tool === 'yarn')) {
    workspace = cdDir;
    if (tool === 'yarn') name = pos[0] === 'run' ? pos[1] : pos[0];
  }
  if (!workspace || !name) return null;
  return { workspace, script: name };
}
