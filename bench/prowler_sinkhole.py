"""A dead-end HTTP(S) proxy on 127.0.0.1 that records where a tool tried to go, and refuses.

Prowler runs with HTTP(S)_PROXY pointing here and NO_PROXY=127.0.0.1,localhost, so every request
to the emulator goes direct and every other one (internet) lands here: logged as one JSON line
(method and target) to the file given, answered 403, never forwarded. The bench also runs in a
network namespace with only loopback when it can; this proxy is what tells which hosts were tried.

Usage: python prowler_sinkhole.py LOGFILE   (prints the port on stdout, runs until killed)
"""

import json
import socketserver
import sys
import time


class Sinkhole(socketserver.StreamRequestHandler):
    def handle(self):
        line = self.rfile.readline(8192).decode("latin-1").strip()
        if not line:
            return
        method, _, rest = line.partition(" ")
        target = rest.rsplit(" ", 1)[0]
        with open(self.server.log_path, "a") as f:
            f.write(json.dumps({"t": time.time(), "method": method, "target": target}) + "\n")
        self.wfile.write(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")


class Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


def main():
    server = Server(("127.0.0.1", 0), Sinkhole)
    server.log_path = sys.argv[1]
    print(server.server_address[1], flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
