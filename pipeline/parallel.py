"""One executor abstraction for the two maps of a run (stage per file, evaluate and write per batch of units).

`make_executor(workers, scheduler)` gives:
- `workers == 1` and no scheduler: in-process, in order (tests, debugging, tiny inputs);
- `workers > 1`: a `concurrent.futures.ProcessPoolExecutor` on this machine;
- `scheduler="tcp://HOST:PORT"`: a Dask `distributed.Client` on that cluster. Its workers need this package
  importable (same version) and the same paths to the input and output folders (a shared file system): tasks read
  input files and write output files by path, so only small results travel back (unit keys, a batch's few rows per
  unit and file digests).

All three expose `imap(fn, items)`: results as they complete, each paired with its item's index, with at most a
bounded number of tasks in flight, so a run over thousands of units streams and never holds every result (or every
workbook) at once. The compute stages run inside each batch, vectorised over the batch's units (see run.py).
"""

from __future__ import annotations

import itertools
import multiprocessing
import os
import sys
from collections.abc import Sized
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from typing import Callable, Iterable, Iterator

# Tasks in flight per worker: enough to keep every worker busy while results come back, few enough that the
# pending results stay small.
IN_FLIGHT_PER_WORKER = 4
# Fewer items than this run in-process: starting workers costs more than it saves.
MIN_PARALLEL = 8


def default_workers() -> int:
    """The CPU count this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


class Counted:
    """Items of a known number, made only as they are taken: what `imap` is given when the items come from disk (it
    decides from their number whether the workers are worth it)."""

    def __init__(self, items: Iterable, count: int):
        self._items, self._count = items, count

    def __len__(self) -> int:
        return self._count

    def __iter__(self) -> Iterator:
        return iter(self._items)


class Executor:
    """In-process executor: `imap` runs each item here, in order."""

    workers = 1

    def imap(self, fn: Callable, items: Iterable, *args,
             inline_below: int | None = None) -> Iterator[tuple[int, object]]:
        """(index, fn(item, *args)) for every item, as they complete (here: in order). Executors with workers run
        fewer than `inline_below` (default MIN_PARALLEL) items here: heavy items, such as batches of units, pass a
        lower bound."""
        for i, item in enumerate(items):
            yield i, fn(item, *args)

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class _FuturesExecutor(Executor):
    """Shared bounded-window logic for anything with `submit(fn, *args) -> future` and a wait primitive."""

    def _submit(self, fn, item, args):
        raise NotImplementedError

    def _wait_some(self, pending: set) -> tuple[set, set]:
        raise NotImplementedError

    def _result(self, fut):
        return fut.result()

    def imap(self, fn, items, *args, inline_below: int | None = None):
        least = MIN_PARALLEL if inline_below is None else inline_below
        if isinstance(items, Sized) and len(items) < least:  # not worth a round trip to the workers
            yield from Executor.imap(self, fn, items, *args)
            return
        window = max(2, IN_FLIGHT_PER_WORKER * self.workers)
        todo = enumerate(items)  # pulled lazily: an item (a unit's report) is built only when a slot is free
        index_of = {}
        pending: set = set()
        try:
            while True:
                for i, item in itertools.islice(todo, window - len(pending)):
                    fut = self._submit(fn, item, args)
                    index_of[fut] = i
                    pending.add(fut)
                if not pending:
                    break
                done, pending = self._wait_some(pending)
                for fut in sorted(done, key=index_of.__getitem__):
                    yield index_of.pop(fut), self._result(fut)
        finally:
            for fut in pending:
                fut.cancel()


class ProcessExecutor(_FuturesExecutor):
    def __init__(self, workers: int):
        self.workers = workers
        self._pool = None

    @property
    def pool(self) -> ProcessPoolExecutor:
        """Started on first use (a small run never starts it). Forked on Linux: the workers start with the package
        already imported; elsewhere the platform's default."""
        if self._pool is None:
            ctx = multiprocessing.get_context("fork") if sys.platform.startswith("linux") else None
            self._pool = ProcessPoolExecutor(max_workers=self.workers, mp_context=ctx)
        return self._pool

    def _submit(self, fn, item, args):
        return self.pool.submit(fn, item, *args)

    def _wait_some(self, pending):
        done, rest = wait(pending, return_when=FIRST_COMPLETED)
        return done, set(rest)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None


class DaskExecutor(_FuturesExecutor):
    def __init__(self, address: str):
        from distributed import Client

        self.client = Client(address, set_as_default=False)
        self.workers = max(1, sum(w.get("nthreads", 1) for w in self.client.scheduler_info()["workers"].values()))

    def imap(self, fn, items, *args, inline_below: int | None = None):
        from distributed import as_completed

        self._completed = as_completed(loop=self.client.loop)  # bound to our client, not a default one
        yield from super().imap(fn, items, *args, inline_below=inline_below)

    def _submit(self, fn, item, args):
        # pure=False: every task runs (a key derived from arguments would merge identical items)
        fut = self.client.submit(fn, item, *args, pure=False)
        self._completed.add(fut)
        return fut

    def _wait_some(self, pending):
        done = {next(self._completed)}
        done.update(self._completed.next_batch(block=False))
        return done, pending - done

    def _result(self, fut):
        try:
            return fut.result()
        finally:
            fut.release()

    def close(self) -> None:
        self.client.close()


def make_executor(workers: int | None = None, scheduler: str | None = None) -> Executor:
    """The executor for `--workers N` / `--scheduler ADDR` (scheduler wins). `workers` None = CPU count."""
    if scheduler:
        return DaskExecutor(scheduler)
    n = default_workers() if workers is None else workers
    if n <= 1:
        return Executor()
    return ProcessExecutor(n)
