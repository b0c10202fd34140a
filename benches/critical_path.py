#!/usr/bin/env python3
"""Splits each proxied request's critical path into its segments, from the
scheduler's trace (`perf sched timehist -w` output), and prints percentiles
of each segment. Used by critical_path.sh; see there for what it measures.

A request's path, as the scheduler sees it on a machine whose load
generator, proxy and mock each sleep between requests:

  load wakes proxy -> proxy runs -> proxy wakes mock -> mock runs ->
  mock wakes proxy -> proxy runs -> proxy wakes load -> load runs

A wake-up ("X awakened: Y") is logged when X makes Y runnable (a socket
write does it); a run starts when a switch-in is logged. So the segments
are: three wake-to-run delays that the proxy causes or suffers (load->proxy,
proxy->mock, mock->proxy) plus the last (proxy->load), and the work between
a wake-up and the next: the proxy's request side (read, parse, authenticate,
route, write upstream), the mock's, and the proxy's response side (read the
head, write the client's). At the low rates this is for (one request in
flight most of the time) requests do not interleave; a chain interrupted by
the next request's wake-up is dropped, not guessed.

  critical_path.py PROXY_COMM TRACE... [--json OUT]
"""
import json
import re
import sys

LOAD = "load-0"
MOCK = "mock-0"
SEGMENTS = [
    "load->proxy wake",
    "proxy request side",
    "proxy->mock wake",
    "mock",
    "mock->proxy wake",
    "proxy response side",
    "proxy->load wake",
]


def comm(task):
    """`name[tid/pid]` -> name."""
    return re.sub(r"\[[0-9/]+\]$", "", task)


def events(path):
    """(kind, time_us, comm, wakee): kind 'w' (wake-up) or 'r' (run start)."""
    out = []
    with open(path) as f:
        for line in f:
            p = line.split()
            if len(p) < 3 or not p[0][:1].isdigit():
                continue
            # perf prints seconds to the µs: keep whole µs, not float noise.
            t = round(float(p[0]) * 1e6)
            if "awakened:" in p:
                out.append(("w", t, comm(p[2]), comm(p[-1])))
            elif len(p) >= 6:
                try:
                    run_ms = float(p[5])
                except ValueError:
                    continue
                # The line is logged at switch-out; the run began run_ms before.
                out.append(("r", t - round(run_ms * 1000), comm(p[2]), None))
    out.sort(key=lambda e: e[1])
    return out


def chains(evs, proxy):
    """Each request's eight timestamps, in order."""
    steps = [
        ("w", LOAD, proxy),
        ("r", proxy),
        ("w", proxy, MOCK),
        ("r", MOCK),
        ("w", MOCK, proxy),
        ("r", proxy),
        ("w", proxy, LOAD),
        ("r", LOAD),
    ]
    found = []
    i, n = 0, len(evs)
    while i < n:
        e = evs[i]
        if not (e[0] == "w" and e[2] == LOAD and e[3] == proxy):
            i += 1
            continue
        ts, k, j = [e[1]], 1, i + 1
        while k < len(steps) and j < n:
            s, f = steps[k], evs[j]
            if f[0] == "w" and f[2] == LOAD and f[3] == proxy:
                break  # the next request began: drop this one
            if s[0] == "w" and f[0] == "w" and (f[2], f[3]) == s[1:]:
                ts.append(f[1])
                k += 1
            elif s[0] == "r" and f[0] == "r" and f[2] == s[1] and f[1] >= ts[-1] - 1:
                # (- 1: both times are rounded to the µs)
                ts.append(f[1])
                k += 1
            j += 1
        if k == len(steps):
            found.append(ts)
        i = j if j > i else i + 1
    return found


def pct(sorted_values, q):
    return sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))]


def summary(values):
    v = sorted(values)
    return {"p50": pct(v, 0.5), "p90": pct(v, 0.9), "p99": pct(v, 0.99), "mean": sum(v) / len(v)}


def main(argv):
    out_json = None
    if "--json" in argv:
        i = argv.index("--json")
        out_json = argv[i + 1]
        argv = argv[:i] + argv[i + 2:]
    proxy, traces = argv[0], argv[1:]
    paths = []
    for t in traces:
        paths += chains(events(t), proxy)
    if not paths:
        sys.exit(f"no complete request path for {proxy} in {traces}")
    result = {"proxy": proxy, "requests": len(paths), "segments_us": {}}
    for k, name in enumerate(SEGMENTS):
        result["segments_us"][name] = summary([p[k + 1] - p[k] for p in paths])
    result["segments_us"]["total"] = summary([p[-1] - p[0] for p in paths])
    result["segments_us"]["proxy work"] = summary([(p[2] - p[1]) + (p[6] - p[5]) for p in paths])
    print(f"{proxy}: {len(paths)} request paths (µs)")
    print(f"  {'segment':22s} {'p50':>6s} {'p90':>6s} {'p99':>6s} {'mean':>6s}")
    for name, s in result["segments_us"].items():
        print(f"  {name:22s} {s['p50']:6.0f} {s['p90']:6.0f} {s['p99']:6.0f} {s['mean']:6.1f}")
    if out_json:
        with open(out_json, "w") as f:
            json.dump(result, f, indent=1)


if __name__ == "__main__":
    main(sys.argv[1:])
