"""MLflow runs' learning curves, one metric-history request per run, several in flight.

MLflow's client has no bulk read of metric histories, so each run's curve is one request
(``MlflowClient.get_metric_history``). Against a tracking server most of a request's time
is the round trip and the server's work, so a bounded pool of threads keeps several in
flight; each thread has a client of its own. The curves come back keyed by run id, so the
caller assembles its records in the runs' order whatever order the answers came in.

A run whose request fails is the caller's to skip; but a failure that says no server answers
at all (``gone``) ends the reading at once, the queued requests cancelled: each would spend
MLflow's retries (minutes) to be skipped in turn.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from contextlib import AbstractContextManager, nullcontext

from mlflow import MlflowClient

from autotweak.meta._mlflow_runs import finite

__all__ = ["Curve", "read_curves"]

THREADS = 8  # requests in flight: a server's usual threads; a SQLite store's reads overlap too
Curve = tuple[tuple[int, ...], tuple[float, ...]]
Gone = Callable[[str, Exception], Exception | None]  # (what failed, its error) -> the error to stop with


def read_curves(
    client: MlflowClient,
    tracking_uri: str,
    run_ids: Sequence[str],
    metric: str,
    done: Callable[[], None],
    waiting: Callable[[str], AbstractContextManager[None]] = lambda _: nullcontext(),
    gone: Gone = lambda _, __: None,
) -> dict[str, Curve | Exception]:
    """Each run's curve of ``metric``, or the exception its request raised.

    Args:
        client: The caller's client, used where one thread reads (``THREADS`` is 1).
        tracking_uri: The store's URI, for each thread's own client.
        run_ids: The runs whose curves to read.
        metric: The metric's name.
        done: Called (in the caller's thread) once per run whose curve has come back.
        waiting: A context around each request, given what it does (the line of a long wait).
        gone: Given what a failed request did and its error, the error to end the reading
            with where no server answers, else ``None`` (the run is skipped).

    Raises:
        Exception: What ``gone`` gives, at the first failure it gives one for.
    """
    if THREADS <= 1 or len(run_ids) <= 1:
        return {run_id: _told(_read(client, run_id, metric, waiting, gone), done) for run_id in run_ids}
    local = threading.local()
    ended: list[Exception] = []  # the error that ends the reading: no thread starts a request after it

    def read(run_id: str) -> Curve | Exception:
        if ended:  # queued before the pool's queue was cancelled
            raise ended[0]
        if not hasattr(local, "client"):  # MlflowClient is not documented as thread-safe
            local.client = MlflowClient(tracking_uri=tracking_uri)
        try:
            return _read(local.client, run_id, metric, waiting, gone)
        except Exception as exc:
            ended.append(exc)
            raise

    out: dict[str, Curve | Exception] = {}
    with ThreadPoolExecutor(min(THREADS, len(run_ids)), thread_name_prefix="autotweak-curves") as pool:
        futures = {pool.submit(read, run_id): run_id for run_id in run_ids}
        try:
            for future in as_completed(futures):
                out[futures[future]] = _told(future.result(), done)
        except BaseException:  # Ctrl-C or no server: wait for the requests in flight only
            pool.shutdown(cancel_futures=True)
            raise
    return out


def _told(result: Curve | Exception, done: Callable[[], None]) -> Curve | Exception:
    done()
    return result


def _read(
    client: MlflowClient,
    run_id: str,
    metric: str,
    waiting: Callable[[str], AbstractContextManager[None]],
    gone: Gone,
) -> Curve | Exception:
    """The run's curve or its error; ``gone``'s error is raised where that error says no server answers."""
    result = _curve_or_error(client, run_id, metric, waiting)
    if isinstance(result, Exception):
        error = gone(_what(run_id, metric), result)
        if error is not None:
            raise error
    return result


def _what(run_id: str, metric: str) -> str:
    return f"reading the history of metric {metric!r} of run {run_id}"


def _curve_or_error(
    client: MlflowClient, run_id: str, metric: str, waiting: Callable[[str], AbstractContextManager[None]]
) -> Curve | Exception:
    """The metric's finite points by step, the last logged one where a step repeats."""
    try:
        with waiting(_what(run_id, metric)):
            history = client.get_metric_history(run_id, metric)
        by_step = {m.step: m.value for m in sorted(history, key=lambda m: (m.step, m.timestamp))}
        points = sorted((step, value) for step, value in by_step.items() if finite(value))
        return tuple(int(s) for s, _ in points), tuple(float(v) for _, v in points)
    except Exception as exc:  # a record must never stop the reading: the run is skipped, counted
        return exc
