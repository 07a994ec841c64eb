#!/usr/bin/env python3
"""50 clients each send 20 MiB of 1 KiB lines to a line-echo server and never read a
reply; prints the server's peak VmRSS, then times 100 round trips of a well-behaved client.

usage: cargo run --release --example echo_server -- --listen 127.0.0.1:7321 &
       python3 benches/flood_nonreaders.py 7321 $!
"""
import re
import socket
import sys
import threading
import time

port, pid = int(sys.argv[1]), sys.argv[2]
N, FLOOD = 50, 20 << 20
line = b"f" * 1023 + b"\n"


def flood():
    s = socket.create_connection(("127.0.0.1", port))
    socks.append(s)  # held open, never read
    s.settimeout(2)
    sent = 0
    try:
        while sent < FLOOD:
            s.sendall(line * 64)
            sent += len(line) * 64
    except OSError:
        pass  # blocked for 2 s: the server stopped reading


def rss_kib():
    status = open(f"/proc/{pid}/status").read()
    return int(re.search(r"VmRSS:\s+(\d+)", status).group(1))


socks = []
ts = [threading.Thread(target=flood) for _ in range(N)]
for t in ts:
    t.start()
peak, t0 = 0, time.time()
while any(t.is_alive() for t in ts) or time.time() - t0 < 8:
    peak = max(peak, rss_kib())
    time.sleep(0.2)
g = socket.create_connection(("127.0.0.1", port))
g.settimeout(5)
t1 = time.time()
for i in range(100):
    g.sendall(b"ping %d\n" % i)
    buf = b""
    while not buf.endswith(b"\n"):
        buf += g.recv(100)
print(f"peak VmRSS {peak / 1024:.1f} MiB; good client 100 round trips in "
      f"{(time.time() - t1) * 1000:.1f} ms")
