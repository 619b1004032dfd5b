"""Work shared out among forked processes, as many as the CPU cores this process may use.

Generation shares independent takes among workers (:func:`genseq.sampler.sample_frames`); a
worker is a forked child on one thread, so nothing is pickled but the results.
"""

import multiprocessing
import os
import sys

import torch

CPU_MAX = "/sys/fs/cgroup/cpu.max"  # "QUOTA PERIOD" in microseconds, or "max PERIOD"


def available_cpus() -> int:
    """The CPU cores this process may run on: its affinity, capped by a container's CPU quota
    (cgroup v2 ``cpu.max``), so that a 2-CPU container on a 64-core host runs 2 workers."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1
    try:
        with open(CPU_MAX) as f:
            quota, period = f.read().split()[:2]
        if quota != "max":
            cores = min(cores, max(1, int(int(quota) / int(period))))
    except (OSError, ValueError):
        pass
    return cores


def run_forked(jobs: list, progress=None) -> list:
    """Each job's result, ``job(report)``: the first in this process (reporting to ``progress``),
    the others at the same time in forked children, one thread each. Runs them one after another
    where fork is not safe (off Linux)."""
    if len(jobs) == 1 or not sys.platform.startswith("linux"):
        return [job(progress if k == 0 else None) for k, job in enumerate(jobs)]
    context = multiprocessing.get_context("fork")
    children = []
    for job in jobs[1:]:
        reader, writer = context.Pipe(duplex=False)
        child = context.Process(target=_child, args=(job, writer), daemon=True)
        child.start()
        writer.close()
        children.append((child, reader))
    try:
        results = [jobs[0](progress)]
        for child, reader in children:
            ok, value = reader.recv()
            if not ok and value == INTERRUPTED:  # Ctrl-C reaches the whole process group: stop as the parent does
                raise KeyboardInterrupt
            if not ok:
                raise RuntimeError(f"a sampling worker failed: {value}")
            results.append(value)
    finally:
        for child, reader in children:
            reader.close()
            child.join(timeout=1)
            if child.is_alive():
                child.terminate()
    return results


INTERRUPTED = "interrupted"


def _child(job, writer) -> None:
    try:
        torch.set_num_threads(1)
        writer.send((True, job(None)))
    except KeyboardInterrupt:
        writer.send((False, INTERRUPTED))
    except BaseException as error:  # noqa: BLE001 - reported to the parent, which raises it
        writer.send((False, f"{type(error).__name__}: {error}"))
    finally:
        writer.close()
