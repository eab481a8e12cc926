"""Run map blocks serially or on Dask (a local cluster or an existing scheduler) — one code path.

Each block is computed by :func:`compute_block` (model loaded once per process, one torch thread):
a task gets its :class:`~cropmeta.mapping.infer.Job` (input number + window) and reads its own
window from the input named in the :class:`Bundle` (paths, not pixels, travel; the bundle is
scattered to every worker once). Results go back to the driver, which alone writes parts and the
manifest. A block that raises is retried ``retries`` times (Dask's own ``retries=`` on a cluster),
then reported by input name and window; the other blocks still finish, so a rerun only redoes the
failed ones.

Local clusters (``workers=N``) are N one-thread workers *in this process* by default
(``processes=False``): torch releases the GIL in its kernels and GDAL in its reads, so N workers
use N cores without starting N interpreters that each import torch, load the model and compute
the input's slope fill again (measured: those start-up costs are what made a 2-worker export of a
one-block tile slower than serial; docs/benchmarks.md). Reads of one input are serialised by a
per-input lock (a GDAL dataset handle is not thread-safe); inference runs in parallel.
``processes=True`` gives the old process-per-worker cluster; a remote ``scheduler`` gets the same
tasks, and a worker plugin (:mod:`cropmeta.mapping.dask_plugin`) loads the model once per worker.
"""

from __future__ import annotations

import contextlib
import os
import threading
from dataclasses import dataclass
from typing import Callable

import numpy as np

from cropmeta.errors import InputError
from cropmeta.mapping.infer import Job, ModelSpec, run_job
from cropmeta.mapping.roi import block_mask
from cropmeta.mapping.sources import MAX_READ_PIXELS, Source


@dataclass
class Bundle:
    """Everything a block needs besides its Job: sent to each worker once."""

    sources: list[Source]
    roi: list  # per source: shapely geometry in the source's CRS, or None
    model: ModelSpec
    gdal_cache_mb: int = 256  # GDAL block cache cap while reading (bounds memory, see export)
    read_pixels: int = MAX_READ_PIXELS  # largest strip a task reads at once (from the memory budget)


@dataclass
class Failure:
    job: Job
    tile: str
    error: str
    attempts: int

    def describe(self) -> str:
        w = self.job
        return (f"{self.tile} block (row {w.row_off}, col {w.col_off}, {w.height}x{w.width}) failed after "
                f"{self.attempts} attempt(s): {self.error}")


_READ_LOCKS: dict[tuple, threading.Lock] = {}
_READ_LOCKS_GUARD = threading.Lock()


def read_lock(src: Source) -> threading.Lock:
    """This process's lock for reading ``src`` (threads of one process share its open dataset)."""
    ref = src.ref
    key = (src.kind, src.name, str(ref) if isinstance(ref, (str, os.PathLike)) else id(ref))
    with _READ_LOCKS_GUARD:
        return _READ_LOCKS.setdefault(key, threading.Lock())


def compute_block(job: Job, bundle: Bundle) -> tuple[str, np.ndarray]:
    from cropmeta.io.handles import gdal_cache_env

    src = bundle.sources[job.tile]
    with gdal_cache_env(bundle.gdal_cache_mb):
        mask = block_mask(bundle.roi[job.tile], src.grid, job.window)
        return job.key, run_job(job, src, bundle.model, mask, read_lock=read_lock(src),
                                   read_pixels=bundle.read_pixels)


def _describe_exc(e: BaseException) -> str:
    msg = str(e).strip() or type(e).__name__
    return f"{type(e).__name__}: {msg}" if not msg.startswith(type(e).__name__) else msg


class SerialExecutor:
    """In-process, in job order."""

    name = "serial"
    n_workers = 1
    seconds_start = 0.0

    def run(self, jobs: list[Job], bundle: Bundle, retries: int,
            on_result: Callable[[Job, np.ndarray], None]) -> list[Failure]:
        from cropmeta.mapping.model import set_threads

        failures = []
        old_threads = set_threads(bundle.model.threads)
        try:
            return self._run(jobs, bundle, retries, on_result, failures)
        finally:
            if old_threads is not None:
                set_threads(old_threads)

    def _run(self, jobs, bundle, retries, on_result, failures) -> list[Failure]:
        for job in jobs:
            last = None
            for attempt in range(retries + 1):
                try:
                    _, prob = compute_block(job, bundle)
                    break
                except Exception as e:  # noqa: BLE001 - reported by name below
                    last = e
            else:
                failures.append(Failure(job, bundle.sources[job.tile].name, _describe_exc(last), retries + 1))
                continue
            on_result(job, prob)
        return failures

    def close(self) -> None:
        pass


class DaskExecutor:
    """A ``dask.distributed`` client on a new local cluster (``workers=N``) or an existing scheduler."""

    name = "dask"

    def __init__(self, workers: int | None = None, scheduler: str | None = None,
                 connect_timeout: float | None = None, processes: bool = False):
        import time

        from dask.distributed import Client, LocalCluster

        t0 = time.perf_counter()
        self._cluster = None
        if scheduler:
            if "://" not in scheduler:
                scheduler = f"tcp://{scheduler}"
            import dask

            timeout = connect_timeout if connect_timeout is not None else \
                dask.config.get("distributed.comm.timeouts.connect")
            try:
                self.client = Client(scheduler, timeout=timeout, set_as_default=False)
            except (OSError, TimeoutError) as e:
                raise InputError(f"cannot reach the Dask scheduler at {scheduler}: {e}") from e
            except ValueError as e:
                raise InputError(f"Dask scheduler address {scheduler!r} is not valid: {e}") from e
        else:
            if not workers or workers < 1:
                raise InputError(f"--workers must be >= 1, got {workers}")
            import dask

            # Dask's nanny gives worker processes MALLOC_TRIM_THRESHOLD_=65536; setting it switches off
            # glibc's adaptive mmap threshold, so every large temporary tensor is a fresh mmap and a
            # Presto map ran 1.7x slower per core in worker processes than in threads
            # (benchmarks/bench_presto.py, docs/benchmarks.md). The workers keep glibc's defaults.
            with dask.config.set({"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None}):
                self._cluster = LocalCluster(n_workers=int(workers), threads_per_worker=1, processes=bool(processes),
                                             dashboard_address=None)
            self.client = Client(self._cluster, set_as_default=False)
        self.n_workers = max(1, len(self.client.scheduler_info().get("workers", {})) or int(workers or 1))
        self.seconds_start = time.perf_counter() - t0  # cluster start / connection (reported by export)
        # workers in this process (a new thread cluster, or an in-process scheduler such as a test's)
        self.in_process = (self._cluster is not None and not processes) or str(scheduler).startswith("inproc://")

    def run(self, jobs: list[Job], bundle: Bundle, retries: int,
            on_result: Callable[[Job, np.ndarray], None]) -> list[Failure]:
        from dask.distributed import as_completed

        from cropmeta.mapping.model import set_threads

        if not jobs:
            return []
        # in-process workers set this process's torch threads (to the model's): restored afterwards
        old_threads = set_threads(bundle.model.threads) if self.in_process else None
        try:
            with self.client.as_current():
                return self._run(jobs, bundle, retries, on_result, as_completed)
        finally:
            if old_threads is not None:
                set_threads(old_threads)

    def _run(self, jobs, bundle, retries, on_result, as_completed) -> list[Failure]:
        from cropmeta.mapping.dask_plugin import ModelWarmup, plugin_name

        # the model once per worker, before the first block (and on workers that join later)
        self.client.register_plugin(ModelWarmup(bundle.model), name=plugin_name(bundle.model))
        fut_bundle = self.client.scatter(bundle, broadcast=True)
        in_flight = max(4, 4 * self.n_workers)
        todo = iter(jobs)
        by_key = {}

        def submit(job: Job):
            f = self.client.submit(compute_block, job, fut_bundle, retries=retries, pure=False)
            by_key[f.key] = job
            return f

        failures: list[Failure] = []
        first = [submit(j) for _, j in zip(range(in_flight), todo)]
        ac = as_completed(first)
        for fut in ac:
            job = by_key.pop(fut.key)
            try:
                _, prob = fut.result()
            except Exception as e:  # noqa: BLE001 - reported by name
                failures.append(Failure(job, bundle.sources[job.tile].name, _describe_exc(e), retries + 1))
            else:
                on_result(job, prob)
            fut.release()
            nxt = next(todo, None)
            if nxt is not None:
                ac.add(submit(nxt))
        return failures

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.client.close()
        if self._cluster is not None:
            with contextlib.suppress(Exception):
                self._cluster.close()


def make_executor(workers: int | None, scheduler: str | None, processes: bool = False):
    """``scheduler``: that cluster; ``workers``: a new local cluster (in-process one-thread workers,
    or worker processes with ``processes=True``); neither: serial."""
    if scheduler:
        return DaskExecutor(scheduler=scheduler)
    if workers is not None:
        return DaskExecutor(workers=workers, processes=processes)
    return SerialExecutor()
