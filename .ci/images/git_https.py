#!/usr/bin/env python3
"""A tiny HTTPS git server for .ci/images/run.sh: serves the bare repositories under --root with
git's smart HTTP protocol (`git http-backend` as CGI), so the runner image clones
`https://<host>/<owner>/<repo>` exactly as from GitHub (shallow clone and fetch included).

With --token, every request must carry `Authorization: Basic base64(x-access-token:<token>)`
(what the runner sends for GIT_TOKEN), else 401; --token-file reads the token from a file at
every request, so a test can rotate it. Prints `git-https: listening on <port>` when
ready; one line per request to stderr. Standard library only.
"""
import argparse
import base64
import http.server
import os
import ssl
import subprocess
import sys
import urllib.parse


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--root", required=True, help="directory holding <owner>/<repo>.git bare repos")
    ap.add_argument("--cert", required=True)
    ap.add_argument("--key", required=True)
    ap.add_argument("--bind", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--token", default=None)
    ap.add_argument("--token-file", default=None)
    args = ap.parse_args()
    root = os.path.abspath(args.root)

    def basic(token):
        return "Basic " + base64.b64encode(f"x-access-token:{token}".encode()).decode()

    def wanted_auth():
        if args.token_file:
            with open(args.token_file) as f:
                return basic(f.read().strip())
        return basic(args.token) if args.token else None
    backend = os.path.join(
        subprocess.run(["git", "--exec-path"], check=True, capture_output=True, text=True).stdout.strip(),
        "git-http-backend",
    )

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "git-https-ci"

        def log_message(self, fmt, *a):  # noqa: N802 (stdlib name)
            sys.stderr.write("git-https: %s\n" % (fmt % a))

        def _body(self) -> bytes:
            if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                out = bytearray()
                while True:
                    size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                    if size == 0:
                        while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                            pass
                        return bytes(out)
                    out += self.rfile.read(size)
                    self.rfile.readline()
            n = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(n) if n else b""

        def _reply(self, status: int, headers: list, body: bytes) -> None:
            self.send_response(status)
            for k, v in headers:
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _serve(self) -> None:
            body = self._body() if self.command == "POST" else b""
            want_auth = wanted_auth()
            if want_auth is not None and self.headers.get("Authorization") != want_auth:
                self._reply(401, [("WWW-Authenticate", 'Basic realm="ci"')], b"unauthorized\n")
                return
            url = urllib.parse.urlsplit(self.path)
            env = {
                "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
                "GIT_PROJECT_ROOT": root,
                "GIT_HTTP_EXPORT_ALL": "1",
                "GATEWAY_INTERFACE": "CGI/1.1",
                "SERVER_PROTOCOL": "HTTP/1.1",
                "REQUEST_METHOD": self.command,
                "PATH_INFO": urllib.parse.unquote(url.path),
                "QUERY_STRING": url.query,
                "REMOTE_ADDR": self.client_address[0],
                "CONTENT_TYPE": self.headers.get("Content-Type", ""),
                "CONTENT_LENGTH": str(len(body)),
            }
            for header, var in (("Content-Encoding", "HTTP_CONTENT_ENCODING"), ("Git-Protocol", "HTTP_GIT_PROTOCOL")):
                if self.headers.get(header):
                    env[var] = self.headers[header]
            proc = subprocess.run([backend], input=body, env=env, capture_output=True)
            head, _, payload = proc.stdout.partition(b"\r\n\r\n")
            if not _:
                head, _, payload = proc.stdout.partition(b"\n\n")
            status, headers = 200, []
            for line in head.decode("latin-1").splitlines():
                k, _, v = line.partition(":")
                if k.lower() == "status":
                    status = int(v.strip().split()[0])
                elif k:
                    headers.append((k, v.strip()))
            if proc.returncode != 0 and not proc.stdout:
                status, payload = 500, proc.stderr
            self._reply(status, headers, payload)

        do_GET = _serve  # noqa: N815
        do_POST = _serve  # noqa: N815

    httpd = http.server.ThreadingHTTPServer((args.bind, args.port), Handler)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(args.cert, args.key)
    httpd.socket = ctx.wrap_socket(httpd.socket, server_side=True)
    print(f"git-https: listening on {httpd.server_address[1]}", flush=True)
    httpd.serve_forever()


if __name__ == "__main__":
    main()
