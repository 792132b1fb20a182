"""Workers: the evaluator's chunks on a local pool, any Executor or a dask.distributed cluster.

``check(..., workers=...)`` hands the evaluator (``fastgc._engines.evaluator``) a :class:`Workers`
object. The chunks are the same as in one process (they depend on the request only), each is
evaluated by an engine that a worker built for itself, and the parent puts the results back by
chunk index: the check computes the same bits with any number of workers.

What travels, and how often:

- once per check and worker: an :class:`EngineSpec` (cost, layout, theta, args, engine kind,
  max_memory), pickled once in the parent with cloudpickle (so lambdas and closures work with
  any executor). A worker builds the engine from it once (the base cost, the network's forward
  pass) and keeps it for every later chunk of the check. With an Executor, the first chunks a
  check submits carry the spec; a worker that is handed a chunk of a check it has not seen
  answers :data:`_MISSING` and the chunk is resubmitted with the spec. With a dask Client the
  spec is scattered to every worker (``broadcast=True``) and each chunk names it.
- per chunk: the method name and the chunk's slice of the request (indices and steps, or
  directions), and back its :class:`~fastgc._engines.registry.Deltas`.

A worker limits numba and BLAS threads so that workers x threads does not exceed the cores
(threadpoolctl where installed; for fastgc's own pool also the environment variables, set
before the worker imports numpy). A chunk lost to a dead worker is retried, alone, once; a
chunk that kills its worker again is reported with its coordinates. Ctrl-C cancels what has not
started and kills fastgc's own pool, so no worker stays busy.
"""

from __future__ import annotations

import atexit
import collections
import concurrent.futures
import os
import pickle
import queue
import sys
import threading
import uuid
from typing import NamedTuple

from fastgc._core.validate import is_int
from fastgc._errors import WorkerError

DEFAULT_RETRIES = 1  # a chunk lost to a dead worker is run again this many times, then reported
IDLE_TIMEOUT = 300  # seconds: fastgc's own pool lets an idle worker exit after this long
_MISSING = "fastgc: no engine for this check on this worker"  # a worker's answer, not an error
_KEEP_CHECKS = 2  # engines a worker keeps (one per check and thread); older ones are dropped
_POLL = 0.1  # seconds between checks for Ctrl-C while waiting on chunks




class EngineSpec(NamedTuple):
    """What a worker needs to build the check's engine: sent once per worker, never per chunk.

    Attributes
    ----------
    cost : callable
        The user's cost (or MLP).
    layout : Layout
        The parameter layout.
    theta : ndarray
        fastgc's own copy of the flat parameters.
    args : tuple
        The cost's extra arguments (copied by pickling: workers never see the user's arrays).
    kind : str
        The engine the parent resolved (``"loop"``, ``"stacked"``, ``"numba"``, ``"network"``).
    max_memory : int or None
        The engine's scratch-memory bound.
    """

    cost: object
    layout: object
    theta: object
    args: tuple
    kind: str
    max_memory: int | None


# ---- validation ------------------------------------------------------------------------------
def cores() -> int:
    """The cores this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def is_dask_client(obj) -> bool:
    """A ``distributed.Client``, recognised without importing dask."""
    if "distributed" not in sys.modules:
        return False
    return isinstance(obj, sys.modules["distributed"].Client)


def validate_workers(workers):
    """``workers`` normalised: None (in-process), an int >= 2, an Executor or a Client."""
    if workers is None:
        return None
    if is_dask_client(workers) or isinstance(workers, concurrent.futures.Executor):
        return workers
    if not is_int(workers):
        raise TypeError(f"workers must be None, an int (-1: all cores), a "
                        f"concurrent.futures.Executor or a distributed.Client, not "
                        f"{type(workers).__name__}")
    workers = int(workers)
    if workers == -1:
        workers = cores()
    if workers < 1:
        raise ValueError(f"workers must be a positive int or -1 (all cores), not {workers}")
    return None if workers == 1 else workers


# ---- the worker side -------------------------------------------------------------------------
# (token, thread) -> engine, in order of first use. A process-wide dict, not thread-local, so
# that a check can be forgotten from any thread; the thread in the key gives each thread of a
# thread pool (or a dask worker's threads) its own engine, since engines perturb a working copy.
_ENGINES: collections.OrderedDict = collections.OrderedDict()
_ENGINES_LOCK = threading.Lock()
_BLAS_LIMITED = []


def _limit_threads(threads: int) -> None:
    """numba threads for this thread; BLAS threads for the process (once); 0: neither."""
    if threads <= 0:
        return
    if "numba" in sys.modules:
        import numba

        numba.set_num_threads(max(1, min(threads, numba.config.NUMBA_NUM_THREADS)))
    if not _BLAS_LIMITED:
        try:
            from threadpoolctl import threadpool_limits
        except ImportError:  # fastgc's own pool set the environment variables already
            pass
        else:
            _BLAS_LIMITED.append(threadpool_limits(limits=threads, user_api="blas"))


def parent_blas_threads() -> int | None:
    """The BLAS threads this process uses (threadpoolctl), or None when it cannot tell.

    A worker gets at most as many: a numpy cost's matrix products can round differently with
    another BLAS thread count, so a user who pins BLAS (``OPENBLAS_NUM_THREADS=1``,
    threadpoolctl) gets the same bits from every worker count, and one who does not is never
    oversubscribed."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return None
    counts = [int(i.get("num_threads", 0)) for i in threadpool_info()
              if i.get("user_api") == "blas"]
    return max(counts) if counts and min(counts) > 0 else None


def _worker_threads(n_workers: int) -> int:
    """Threads for each of ``n_workers`` local workers: the cores shared out, and never more
    BLAS threads than this process has."""
    threads = max(1, cores() // n_workers)
    parent = parent_blas_threads()
    return threads if parent is None else max(1, min(threads, parent))


def _threads_here(threads) -> int:
    if isinstance(threads, dict):  # dask: tasks at once on this worker's host, by address
        from distributed import get_worker

        worker = get_worker()
        return max(1, cores() // threads.get(worker.address, worker.state.nthreads))
    return int(threads)


def evaluate_chunk(token: str, spec, threads, method: str, args: tuple):
    """Run on a worker: ``engine.method(*args)`` with this check's engine, built on first use
    from ``spec`` (pickled bytes, or None when the parent expects the worker to have it)."""
    from fastgc._engines.registry import make_objective

    key = (token, threading.get_ident())
    with _ENGINES_LOCK:
        engine = _ENGINES.get(key)
    if engine is None:
        if spec is None:
            return _MISSING
        spec = pickle.loads(spec) if isinstance(spec, bytes) else spec
        _limit_threads(_threads_here(threads))
        engine = make_objective(spec.cost, spec.layout, spec.theta, spec.args, spec.kind,
                                max_memory=spec.max_memory)
        with _ENGINES_LOCK:
            _ENGINES[key] = engine
            tokens = list(dict.fromkeys(t for t, _ in _ENGINES))
            for old in tokens[:-_KEEP_CHECKS]:
                _forget_locked(old)
    _limit_threads(_threads_here(threads))  # numba's setting is per thread
    return getattr(engine, method)(*args)


def _forget_locked(token) -> None:
    for key in [k for k in _ENGINES if k[0] == token]:
        _ENGINES.pop(key).close()


def forget(token: str) -> None:
    """Run on a worker: drop a finished check's engines (their memory)."""
    with _ENGINES_LOCK:
        _forget_locked(token)


# ---- the parent side -------------------------------------------------------------------------
def _dumps(spec: EngineSpec) -> bytes:
    """The spec pickled once, or a TypeError naming what cannot be sent to a worker."""
    try:
        import cloudpickle

        dumps = cloudpickle.dumps
    except ImportError:  # plain pickle: module-level functions only
        dumps = pickle.dumps
    try:
        return dumps(spec, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception as exc:
        # The most specific culprit first: a closure variable of the cost, then the cost.
        parts = []
        for name, cell in zip(getattr(getattr(spec.cost, "__code__", None), "co_freevars", ()),
                              getattr(spec.cost, "__closure__", None) or (), strict=False):
            parts.append((f"the cost's closure variable {name!r}", cell.cell_contents))
        parts.append(("the cost", spec.cost))
        parts += [(f"args[{k}]", arg) for k, arg in enumerate(spec.args)]
        parts.append(("params (its layout)", spec.layout))
        culprit = next((name for name, obj in parts if not _picklable(dumps, obj)), None)
        what = culprit or "the check's data"
        raise TypeError(
            f"workers: {what} cannot be sent to worker processes ({type(exc).__name__}: "
            f"{exc}). Make it picklable (no open files, locks or live connections inside), or "
            "use workers=None."
        ) from None


def _picklable(dumps, obj) -> bool:
    try:
        dumps(obj)
    except Exception:
        return False
    return True


class _Backend:
    """How chunks reach workers: submit, wait, cancel. Subclasses per kind of pool."""

    n_workers = 1
    threads: object = 1

    def prepare(self, blob: bytes):
        """What the chunks that carry the spec pass for it."""
        return blob

    def submit(self, token, spec, method, args):
        raise NotImplementedError

    def dead_worker(self, exc) -> bool:
        return isinstance(exc, concurrent.futures.BrokenExecutor)

    def renew(self) -> bool:
        """After a dead worker broke the pool: a usable pool again (True), or not (False)."""
        return False

    def cancel(self, futures) -> None:
        for future in futures:
            future.cancel()

    def interrupt(self, futures) -> None:
        self.cancel(futures)

    def finish(self, token) -> None:
        pass


class _ExecutorBackend(_Backend):
    """Any ``concurrent.futures.Executor``: used, never shut down."""

    def __init__(self, executor):
        self.executor = executor
        # The executor's size where it tells (process and thread pools, loky), else the cores.
        self.n_workers = max(1, int(getattr(executor, "_max_workers", None) or cores()))
        # 0: leave threads alone. A thread pool runs in the user's own process, whose BLAS
        # settings are not fastgc's to change.
        self.threads = (0 if isinstance(executor, concurrent.futures.ThreadPoolExecutor)
                        else _worker_threads(self.n_workers))

    def submit(self, token, spec, method, args):
        return self.executor.submit(evaluate_chunk, token, spec, self.threads, method, args)


_OWN_POOL: dict = {}  # fastgc's own loky pool, kept between checks: {"n": ..., "executor": ...}
_OWN_POOL_LOCK = threading.Lock()


def _own_pool(n: int, threads: int):
    """fastgc's loky process pool of ``n`` workers (created, or reused from an earlier check)."""
    try:
        import loky
    except ImportError:
        raise ImportError(f"workers={n} needs loky for fastgc's own process pool: pip install "
                          "'fastgc[workers]' (or pass a concurrent.futures.Executor)") from None
    with _OWN_POOL_LOCK:
        executor = _OWN_POOL.get("executor")
        if (executor is not None and (_OWN_POOL["n"], _OWN_POOL["threads"]) == (n, threads)
                and not executor._flags.shutdown):
            # (loky flags a pool that lost a worker as shut down: it cannot take work again)
            return executor
        if executor is not None:
            executor.shutdown(wait=False, kill_workers=True)
        # Set before a worker imports numpy and numba: their pools are sized when loaded.
        env = {var: str(threads) for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                                             "MKL_NUM_THREADS", "NUMBA_NUM_THREADS")}
        executor = loky.ProcessPoolExecutor(max_workers=n, timeout=IDLE_TIMEOUT, env=env)
        _OWN_POOL.update(n=n, threads=threads, executor=executor)
        return executor


def shutdown_own_pool(kill: bool = False) -> None:
    """Shut fastgc's own pool down (at exit; after Ctrl-C with ``kill=True``)."""
    with _OWN_POOL_LOCK:
        executor = _OWN_POOL.pop("executor", None)
        _OWN_POOL.pop("n", None)
        _OWN_POOL.pop("threads", None)
    if executor is not None:
        executor.shutdown(wait=not kill, kill_workers=kill)


atexit.register(shutdown_own_pool)


class _OwnPoolBackend(_ExecutorBackend):
    """fastgc's own loky pool: created on demand, renewed after a crash, killed on Ctrl-C."""

    def __init__(self, n: int):
        self.n_workers = n
        self.threads = _worker_threads(n)
        self.executor = _own_pool(n, self.threads)

    def renew(self) -> bool:
        self.executor = _own_pool(self.n_workers, self.threads)
        return True

    def interrupt(self, futures) -> None:
        # A running chunk cannot be cancelled: kill the workers, so none stays busy.
        self.cancel(futures)
        shutdown_own_pool(kill=True)


class _DaskBackend(_Backend):
    """A ``distributed.Client``: the spec scattered to every worker, chunks submitted to it."""

    def __init__(self, client):
        self.client = client
        workers = client.scheduler_info().get("workers", {})
        self.n_workers = max(1, sum(int(w.get("nthreads", 1)) for w in workers.values()))
        # Tasks that may run at once on each host; a worker divides its machine's cores (which
        # it counts itself) by this.
        per_host = collections.Counter()
        for w in workers.values():
            per_host[w.get("host")] += int(w.get("nthreads", 1))
        self.threads = {addr: per_host[w.get("host")] for addr, w in workers.items()}
        self._spec = None

    def prepare(self, blob):
        [self._spec] = self.client.scatter([blob], broadcast=True, hash=False)
        return self._spec

    def submit(self, token, spec, method, args):
        # The spec is on every worker already: each chunk names it (a reference, no data), so
        # a worker that joins or replaces a dead one fetches it from a peer.
        return self.client.submit(evaluate_chunk, token, self._spec, self.threads, method, args,
                                  pure=False)

    def dead_worker(self, exc) -> bool:
        return type(exc).__name__ == "KilledWorker"

    def cancel(self, futures) -> None:
        self.client.cancel(list(futures))

    def finish(self, token) -> None:
        if self._spec is not None:
            self.client.cancel([self._spec])
        try:
            self.client.run(forget, token)
        except Exception:  # a worker that left meanwhile has nothing to forget
            pass

    def renew(self) -> bool:
        return True  # the scheduler has already moved the work to the surviving workers


def _exception(future):
    """The exception a finished future raised, or None."""
    try:
        return future.exception()
    except concurrent.futures.CancelledError as exc:
        return exc


class Workers:
    """One check's chunks on a pool: the spec sent once per worker, results in chunk order.

    Parameters
    ----------
    workers : int, Executor or distributed.Client
        As normalised by :func:`validate_workers` (an int >= 2 is fastgc's own pool).
    spec : EngineSpec
        What a worker builds the engine from.
    retries : int
        Times a chunk lost to a dead worker is run again before :class:`WorkerError`.
    """

    def __init__(self, workers, spec: EngineSpec, retries: int = DEFAULT_RETRIES):
        blob = _dumps(spec)  # first: an unpicklable cost fails before any pool starts
        if is_dask_client(workers):
            self._backend = _DaskBackend(workers)
        elif isinstance(workers, concurrent.futures.Executor):
            self._backend = _ExecutorBackend(workers)
        else:
            self._backend = _OwnPoolBackend(workers)
        self._spec = self._backend.prepare(blob)
        self.token = uuid.uuid4().hex
        self.retries = retries
        self._spec_sends = 0

    @property
    def n_workers(self) -> int:
        """Tasks the pool runs at once."""
        return self._backend.n_workers

    def _submit(self, method, args, with_spec: bool):
        if not with_spec and self._spec_sends < self.n_workers:
            # The first chunks of a check carry the spec, about one per worker; a worker that
            # gets none answers _MISSING and is sent it then.
            with_spec = True
        self._spec_sends += with_spec
        return self._backend.submit(self.token, self._spec if with_spec else None, method, args)

    def map(self, method: str, chunks: list, describe, done=None) -> list:
        """``engine.<method>(*chunk)`` for each chunk, on the workers, in chunk order.

        ``describe(k)`` names chunk k in errors (its coordinates); ``done(k)`` is called in
        this thread as each chunk completes (the progress bar).
        """
        results = [None] * len(chunks)
        todo = collections.deque(range(len(chunks)))
        inflight: dict = {}  # future -> chunk index
        finished: queue.SimpleQueue = queue.SimpleQueue()
        lost: collections.Counter = collections.Counter()
        # Chunks that were running when a worker died. Each is run again alone, so that the
        # one that kills its worker is told apart from the ones that died beside it.
        suspects: set = set()
        missing: set = set()
        # A few chunks queued per worker keep every worker busy; more would only make Ctrl-C
        # and a crash cancel more.
        limit = 2 * self.n_workers
        try:
            while todo or inflight:
                while todo and len(inflight) < limit:
                    if suspects.intersection(inflight.values()) or (
                            todo[0] in suspects and inflight):
                        break
                    k = todo.popleft()
                    future = self._submit(method, chunks[k], with_spec=k in missing)
                    missing.discard(k)
                    inflight[future] = k
                    future.add_done_callback(finished.put)
                try:
                    future = finished.get(timeout=_POLL)  # short: Ctrl-C is seen between waits
                except queue.Empty:
                    continue
                k = inflight.pop(future, None)
                if k is None:
                    continue
                exc = _exception(future)
                if exc is None:
                    value = future.result()
                    if isinstance(value, str) and value == _MISSING:
                        missing.add(k)
                        todo.appendleft(k)
                        continue
                    results[k] = value
                    suspects.discard(k)
                    if done is not None:
                        done(k)
                elif self._backend.dead_worker(exc):
                    lost[k] += 1
                    if lost[k] > self.retries:
                        raise WorkerError(
                            f"a worker died {lost[k]} times while evaluating {describe(k)}: the "
                            "cost crashes its process there (a segfault, memory exhausted, "
                            "os._exit)") from exc
                    if not self._backend.renew():
                        raise WorkerError(
                            f"a worker died while evaluating {describe(k)} and the executor "
                            f"is broken ({exc}); pass a working executor, or workers=N for "
                            "fastgc's own pool, which is restarted after a crash") from exc
                    self._spec_sends = 0  # new worker processes know nothing of this check
                    suspects.add(k)
                    todo.appendleft(k)
                else:
                    raise exc
        except BaseException as exc:
            if isinstance(exc, KeyboardInterrupt):
                self._backend.interrupt(list(inflight))
            else:
                self._backend.cancel(list(inflight))
            raise
        return results

    def close(self) -> None:
        """The check is over: workers may drop its engine."""
        self._backend.finish(self.token)
