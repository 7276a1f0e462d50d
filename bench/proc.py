"""Run a command and measure its wall time and the peak memory of its whole process tree.

`python main.py` starts node (the jsii runtime: a small launcher process and the kernel, program.js, under
it), so the Python process's own peak RSS misses most of the memory. While the command runs, a sampler
thread walks /proc every `interval` seconds, finds every descendant of the child, and keeps:
  - `sum_of_peaks_kb`: the sum over processes of each one's VmHWM (its own peak RSS, kept by the kernel);
    it counts python and both node processes, which all live until the end, so this is the tree's peak;
  - `peak_total_kb`: the largest simultaneous sum of VmRSS seen in one sample (a lower bound of the above);
  - `largest_kb`: ru_maxrss from wait4() of the child: the largest single process of the tree (Linux
    folds in the waited-for descendants' peaks as a maximum, not a sum); a cross-check without sampling.
VmHWM only grows, so a sample taken up to `interval` before a process exits still reads its peak, unless
the process grows in those last milliseconds.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Measurement:
    wall_s: float
    cpu_s: float  # user + system time of the child and every descendant it waited for (node included)
    returncode: int
    sum_of_peaks_kb: int
    peak_total_kb: int
    largest_kb: int
    peaks_kb: dict[str, int] = field(default_factory=dict)  # "pid:command" -> VmHWM
    stdout: str = ""
    stderr: str = ""

    @property
    def saw_node(self) -> bool:
        return any(key.split(":", 1)[1].startswith("node") for key in self.peaks_kb)


def _status_kb(pid: int) -> tuple[int, int, str] | None:
    """(VmHWM, VmRSS, Name) of a process, or None once it is gone."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    hwm = rss = 0
    name = "?"
    for line in text.splitlines():
        if line.startswith("VmHWM:"):
            hwm = int(line.split()[1])
        elif line.startswith("VmRSS:"):
            rss = int(line.split()[1])
        elif line.startswith("Name:"):
            name = line.split(None, 1)[1] if len(line.split()) > 1 else "?"
    return hwm, rss, name


def _children_map() -> dict[int, list[int]]:
    out: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry.name}/stat").read_text()
        except OSError:
            continue
        # The command name is in parentheses and may hold spaces: the ppid is the second field after it.
        ppid = int(stat[stat.rindex(")") + 2 :].split()[1])
        out.setdefault(ppid, []).append(int(entry.name))
    return out


def descendants(root: int) -> set[int]:
    """root and every live process under it."""
    children = _children_map()
    found, todo = set(), [root]
    while todo:
        pid = todo.pop()
        if pid in found:
            continue
        found.add(pid)
        todo.extend(children.get(pid, []))
    return found


def run(
    cmd: Sequence[str],
    *,
    env: dict[str, str] | None = None,
    cwd: str | None = None,
    interval: float = 0.02,
    rescan_every: int = 5,
) -> Measurement:
    """Run cmd to completion; wall time from spawn to exit, memory as described in the module docstring."""
    out, err = tempfile.TemporaryFile(), tempfile.TemporaryFile()
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=out, stderr=err)
    peaks: dict[int, tuple[int, str]] = {}
    peak_total = 0
    done = threading.Event()

    def sample() -> None:
        nonlocal peak_total
        pids: set[int] = {proc.pid}
        n = 0
        while not done.is_set():
            if n % rescan_every == 0:
                pids |= descendants(proc.pid)
            n += 1
            total = 0
            for pid in list(pids):
                st = _status_kb(pid)
                if st is None:
                    pids.discard(pid)
                    continue
                hwm, rss, name = st
                # A reaped pid could be reused: only ever keep the larger peak under that pid.
                if hwm >= peaks.get(pid, (0, ""))[0]:
                    peaks[pid] = (hwm, name)
                total += rss
            peak_total = max(peak_total, total)
            done.wait(interval)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    done.set()
    sampler.join()
    out.seek(0)
    err.seek(0)
    stdout, stderr = out.read().decode(errors="replace"), err.read().decode(errors="replace")
    out.close()
    err.close()
    return Measurement(
        wall_s=wall,
        cpu_s=usage.ru_utime + usage.ru_stime,
        returncode=proc.returncode,
        sum_of_peaks_kb=sum(h for h, _ in peaks.values()),
        peak_total_kb=peak_total,
        largest_kb=usage.ru_maxrss,
        peaks_kb={f"{pid}:{name}": h for pid, (h, name) in sorted(peaks.items())},
        stdout=stdout,
        stderr=stderr,
    )
