#!/usr/bin/env python3
"""A do-nothing OTLP/HTTP collector for benchmarks: answers 200 to every
POST (reading its body), prints its address and, on SIGTERM, how many
requests and bytes it took. Usage: benches/otlp_sink.py [PORT]"""
import http.server, signal, sys

count = [0, 0]

class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_POST(self):
        n = int(self.headers.get("content-length", 0))
        self.rfile.read(n)
        count[0] += 1
        count[1] += n
        self.send_response(200)
        self.send_header("content-type", "application/x-protobuf")
        self.send_header("content-length", "0")
        self.end_headers()
    def log_message(self, *a):
        pass

srv = http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1]) if len(sys.argv) > 1 else 0), H)
print(f"otlp sink on 127.0.0.1:{srv.server_address[1]}", flush=True)
def stop(*_):
    print(f"otlp sink: {count[0]} requests, {count[1]} bytes", flush=True)
    sys.exit(0)
signal.signal(signal.SIGTERM, stop)
srv.serve_forever()
