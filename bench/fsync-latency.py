#!/usr/bin/env python3
"""Latency of small appends made durable, as the event log makes them.

    bench/fsync-latency.py grow|zeroed|dsync [DIR]

grow:   write 250 bytes at the end of a growing file, then fdatasync (each append changes the
        file size, which ext4 must journal);
zeroed: the same into space zero-filled (and fsynced) beforehand, as the log's writer does;
dsync:  zeroed space opened with O_DSYNC, no separate fdatasync.
Prints mean, p50 and p99 over 2,000 appends. Run it on the data volume (DIR, default the
current directory); to see the effect of busy CPUs, run e.g. `yes >/dev/null &` twice first.
"""
import os
import sys
import time

mode = sys.argv[1]
directory = sys.argv[2] if len(sys.argv) > 2 else "."
path = os.path.join(directory, "fsync-latency.tmp")
count, record = 2000, b"x" * 250
if os.path.exists(path):
    os.remove(path)
flags = os.O_RDWR | os.O_CREAT | (os.O_DSYNC if mode == "dsync" else 0)
fd = os.open(path, flags, 0o644)
if mode in ("zeroed", "dsync"):
    os.write(fd, b"\0" * (count * len(record) + 4096))
    os.fsync(fd)
    os.lseek(fd, 0, os.SEEK_SET)
latencies = []
for _ in range(count):
    started = time.perf_counter()
    os.write(fd, record)
    if mode != "dsync":
        os.fdatasync(fd)
    latencies.append(time.perf_counter() - started)
os.close(fd)
os.remove(path)
latencies.sort()
print(f"{mode}: mean {sum(latencies) / count * 1e6:.1f} µs, p50 {latencies[count // 2] * 1e6:.1f} µs, "
      f"p99 {latencies[int(count * 0.99)] * 1e6:.1f} µs")
