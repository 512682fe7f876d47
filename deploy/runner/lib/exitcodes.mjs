// Exit codes of the runner (`node entrypoint.mjs`).
export const EXIT_STOPPED = 0; // stopped by SIGTERM / SIGINT
export const EXIT_INTERNAL = 1; // unexpected error
export const EXIT_INVALID = 2; // invalid input
export const EXIT_CLONE = 3; // clone failed
export const EXIT_INSTALL = 4; // install failed, no package.json, or neither "dev" nor "start" script
export const EXIT_DEV_CRASHLOOP = 5; // dev server never served at start (keeps dying or never answers)
export const EXIT_INSTALL_TIMEOUT = 6; // first install made no progress for INSTALL_TIMEOUT (or ran 6 × it)
export const EXIT_CRASHLOOP = 7; // dev server failed 5 times within 2 minutes after it once served

// Exit codes of `node entrypoint.mjs sync`.
export const SYNC_OK = 0;
export const SYNC_FAILED = 1; // the runner answered and the sync failed, or no answer in time
export const SYNC_USAGE = 2; // bad arguments or environment
export const SYNC_UNREACHABLE = 3; // no runner listening on the control socket
