#!/usr/bin/env python3
"""Throughput of writing into the page cache, first touch against reuse.

    bench/page-cache-write.py [DIR] [ROUNDS]

Each round writes 2 GiB with os.write in 256 KiB blocks to a new file in DIR (default the
current directory), prints MB/s, and deletes the file. On a VM whose host takes freed guest
memory back, the first round (into pages the guest has not touched lately) is many times
slower than the rounds right after it, which reuse the pages the deleted file freed: the
effect behind the event log's page-cache advice (docs/performance.md, seventh session).
"""
import os
import sys
import time

directory = sys.argv[1] if len(sys.argv) > 1 else "."
rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 3
path = os.path.join(directory, "page-cache-write.tmp")
block = os.urandom(256 * 1024)
total = 2 * 1024**3
for _ in range(rounds):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    started, written = time.time(), 0
    while written < total:
        written += os.write(fd, block)
    elapsed = time.time() - started
    os.close(fd)
    os.unlink(path)
    print(f"{written / elapsed / 1e6:.0f} MB/s written into the page cache")
