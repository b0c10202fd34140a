"""benches/critical_path.py rebuilds each request's path from a scheduler
trace: checked here on a synthetic `perf sched timehist -w` trace whose
segments are known, so a parsing slip shows as wrong numbers, not as a
plausible-looking table."""

import importlib.util
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
spec = importlib.util.spec_from_file_location("critical_path", ROOT / "benches" / "critical_path.py")
critical_path = importlib.util.module_from_spec(spec)
spec.loader.exec_module(critical_path)

LOAD = "load-0[100/99]"
HELPER = "load-0[101/99]"
PROXY = "sluice-worker-0[200/198]"
MOCK = "mock-0[300/299]"


def wake(t_us, cpu, waker, wakee):
    return f"{t_us / 1e6:15.6f} [{cpu:04d}]  {waker:30s}{' ' * 50}awakened: {wakee}"


def switch_out(t_us, cpu, task, run_us):
    """A switch-out line: the task ran `run_us` up to `t_us`."""
    return f"{t_us / 1e6:15.6f} [{cpu:04d}]  {task:30s}     0.100      0.005  {run_us / 1000:9.3f}"


def request(t0, seg):
    """The lines of one request starting at t0 (µs) whose seven segments
    last `seg` µs each, each task running 1 µs past the wake-up it makes."""
    t = [t0]
    for s in seg:
        t.append(t[-1] + s)
    return [
        wake(t[0], 0, LOAD, PROXY),
        switch_out(t[0] + 1, 0, LOAD, 5),
        switch_out(t[2] + 1, 0, PROXY, t[2] + 1 - t[1]),
        wake(t[2], 0, PROXY, MOCK),
        switch_out(t[4] + 1, 1, MOCK, t[4] + 1 - t[3]),
        wake(t[4], 1, MOCK, PROXY),
        switch_out(t[6] + 1, 1, PROXY, t[6] + 1 - t[5]),
        wake(t[6], 1, PROXY, LOAD),
        switch_out(t[7] + 30, 1, LOAD, 30),
    ]


def write_trace(path, lines):
    head = [
        "           time    cpu  task name                       wait time  sch delay   run time",
        "                        [tid/pid]                          (msec)     (msec)     (msec)",
        "--------------- ------  ------------------------------  ---------  ---------  ---------",
    ]
    path.write_text("\n".join(head + lines) + "\n")


def test_segments_of_known_requests(tmp_path):
    lines = []
    # A helper thread of the load generator wakes its sender: not a request.
    lines.append(wake(999_000, 0, HELPER, LOAD))
    for i in range(10):
        lines += request(1_000_000 + i * 1000, [10, 20 + i, 40, 25, 15, 18, 9])
    # A request cut short by the next one's start is dropped, not guessed.
    lines += [wake(1_020_000, 0, LOAD, PROXY), switch_out(1_020_030, 0, PROXY, 25)]
    lines += request(1_020_500, [10, 20, 40, 25, 15, 18, 9])
    trace = tmp_path / "timehist.txt"
    write_trace(trace, lines)
    out = tmp_path / "out.json"
    critical_path.main(["sluice-worker-0", str(trace), "--json", str(out)])
    result = json.loads(out.read_text())
    assert result["requests"] == 11
    seg = result["segments_us"]
    assert seg["load->proxy wake"]["p50"] == 10
    assert seg["proxy->mock wake"]["p50"] == 40
    assert seg["mock"]["p50"] == 25
    assert seg["mock->proxy wake"]["p50"] == 15
    assert seg["proxy response side"]["p50"] == 18
    assert seg["proxy->load wake"]["p50"] == 9
    # The request side grew by 1 µs a request: 20..29, and 20 once more.
    assert seg["proxy request side"]["p50"] == 24
    assert seg["proxy request side"]["p99"] == 29
    assert seg["total"]["p50"] == 137 + 4
    assert seg["proxy work"]["p50"] == 18 + 24
