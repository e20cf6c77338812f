"""Workers that log their prune decisions, and a replay of each decision from a storage snapshot.

A worker process runs trials of one study on a shared storage and logs, for every report,
when the value was written, when ``should_prune`` ran, what it decided and which system
attributes the pruner left on the trial. A replay rebuilds, for one logged decision, the
storage as it stood while the decision was taken (from the final storage and the logs of
every worker), asks a freshly built pruner of a fresh process, and returns its answer.
Decisions during which another worker changed something relevant are ambiguous (no one
can say which state the pruner read) and are skipped.
"""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
from optuna.distributions import FloatDistribution
from optuna.storages import InMemoryStorage
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

from autotweak.engine._storage import make_storage
from autotweak.spec import Component, Metric
from autotweak.spec._components import build_pruner
from tests.curves.conftest import N_STEPS, toy_curve

STUDY = "consistency"
DISTRIBUTIONS = {"x": FloatDistribution(0.0, 1.0), "y": FloatDistribution(0.0, 1.0)}


@dataclass(frozen=True)
class Setup:
    storage: str
    pruner: str
    args: dict[str, Any]
    logs: str
    trials_per_worker: int = 10


def pruner_of(setup: Setup) -> optuna.pruners.BasePruner:
    return build_pruner(Component(setup.pruner, dict(setup.args)), Metric("acc", "maximize", steps=N_STEPS))


def work(setup: Setup, worker: int) -> None:
    """One worker: run trials, log every report, decision and end."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = make_storage(setup.storage)
    sampler = optuna.samplers.RandomSampler(seed=worker)
    study = optuna.load_study(study_name=STUDY, storage=storage, sampler=sampler, pruner=pruner_of(setup))
    with (Path(setup.logs) / f"worker-{worker}.jsonl").open("w") as log:
        for _ in range(setup.trials_per_worker):
            trial = study.ask(DISTRIBUTIONS)
            curve = toy_curve(trial.params, task=3)
            state, value = TrialState.COMPLETE, curve[-1]
            for step, v in enumerate(curve, start=1):
                t_report = time.time()
                trial.report(v, step)
                t0 = time.time()
                pruned = bool(trial.should_prune())
                t1 = time.time()
                attrs = storage.get_trial(trial._trial_id).system_attrs
                event = {"number": trial.number, "step": step, "value": v, "t_report": t_report}
                log.write(json.dumps(event | {"t0": t0, "t1": t1, "pruned": pruned, "sys": attrs}) + "\n")
                time.sleep(0.002)
                if pruned:
                    state, value = TrialState.PRUNED, v
                    break
            t_tell = time.time()
            study.tell(trial, value if state == TrialState.COMPLETE else None, state=state)
            end = {"number": trial.number, "end": state.name, "t_tell": t_tell, "t_told": time.time()}
            log.write(json.dumps(end) + "\n")


def read_logs(folder: str) -> tuple[list[dict[str, Any]], dict[int, dict[str, Any]]]:
    """Decisions in log order, and each trial's end."""
    decisions, ends = [], {}
    for path in sorted(Path(folder).glob("worker-*.jsonl")):
        for line in path.read_text().splitlines():
            event = json.loads(line)
            if "end" in event:
                ends[event["number"]] = event
            else:
                decisions.append(event)
    return decisions, ends


MAX_AMBIGUOUS = 6
CLOCK_MARGIN = 0.005


def _visible(start: float, end: float, t0: float, t1: float) -> bool | None:
    """Whether a write during ``[start, end]`` was seen by a read during ``[t0, t1]`` (``None``: unknown)."""
    # The times are taken around the calls, not at the commit a reader sees: under load a
    # write that returned just before a read began may still be invisible to it, so a
    # margin (5 ms) on both sides counts as unknown (both outcomes are then replayed).
    if end < t0 - CLOCK_MARGIN:
        return True
    if start > t1 + CLOCK_MARGIN:
        return False
    return None


def _writes(
    decision: dict[str, Any], decisions: list[dict[str, Any]], ends: dict[int, Any]
) -> dict[tuple[Any, ...], bool | None]:
    """Every write of another trial, keyed ``(kind, trial, step)``, and whether the decision saw it."""
    t0, t1 = decision["t0"], decision["t1"]
    seen: dict[tuple[Any, ...], bool | None] = {}
    previous: dict[int, dict[str, Any]] = {}
    for d in sorted(decisions, key=lambda d: (d["number"], d["step"])):
        n = d["number"]
        if n == decision["number"]:
            continue
        seen[("value", n, d["step"])] = _visible(d["t_report"], d["t0"], t0, t1)
        if d["sys"] != previous.get(n, {}):
            seen[("sys", n, d["step"])] = _visible(d["t0"], d["t1"], t0, t1)
        previous[n] = d["sys"]
    for n, end in ends.items():
        if n != decision["number"]:
            seen[("end", n, 0)] = _visible(end["t_tell"], end["t_told"], t0, t1)
    return seen


def _frozen_trials(
    decision: dict[str, Any],
    decisions: list[dict[str, Any]],
    ends: dict[int, Any],
    params: dict[int, Any],
    seen: dict[tuple[Any, ...], bool],
) -> Iterator[FrozenTrial]:
    by_trial: dict[int, list[dict[str, Any]]] = {}
    for d in decisions:
        by_trial.setdefault(d["number"], []).append(d)
    for n in sorted(params):
        own = sorted(by_trial.get(n, []), key=lambda d: d["step"])
        state, value = TrialState.RUNNING, None
        if n == decision["number"]:
            values = {d["step"]: d["value"] for d in own if d["step"] <= decision["step"]}
            system = next((d["sys"] for d in reversed(own) if d["step"] < decision["step"]), {})
        else:
            values = {d["step"]: d["value"] for d in own if seen[("value", n, d["step"])]}
            system = {}
            for d in own:
                if seen.get(("sys", n, d["step"])):
                    system = d["sys"]
            if seen[("end", n, 0)]:
                state = TrialState[ends[n]["end"]]
                value = own[-1]["value"] if state == TrialState.COMPLETE else None
        yield optuna.trial.create_trial(
            state=state,
            value=value,
            params=params[n],
            distributions=DISTRIBUTIONS,
            intermediate_values=values,
            system_attrs=system,
        )


def _decide(setup: Setup, trials: list[FrozenTrial], number: int) -> bool:
    storage = InMemoryStorage()
    study_id = storage.create_new_study([StudyDirection.MAXIMIZE], STUDY)
    for trial in trials:
        storage.create_new_trial(study_id, template_trial=trial)
    study = optuna.load_study(study_name=STUDY, storage=storage, pruner=pruner_of(setup))
    frozen = storage.get_trial(storage.get_trial_id_from_study_id_trial_number(study_id, number))
    return bool(study.pruner.prune(study, frozen))


def replay(setup: Setup) -> list[tuple[int, int, bool | None]]:
    """Every logged decision re-taken from its snapshot by this process: ``(trial, step, pruned)``.

    ``pruned`` is ``None`` for an ambiguous decision.
    """
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    final = optuna.load_study(study_name=STUDY, storage=make_storage(setup.storage))
    params = {t.number: t.params for t in final.get_trials(deepcopy=False)}
    decisions, ends = read_logs(setup.logs)
    out: list[tuple[int, int, bool | None]] = []
    for decision in sorted(decisions, key=lambda d: (d["number"], d["step"])):
        seen = _writes(decision, decisions, ends)
        unknown = [key for key, visible in seen.items() if visible is None]
        if len(unknown) > MAX_AMBIGUOUS:
            out.append((decision["number"], decision["step"], None))
            continue
        answers = set()
        for assumed in itertools.product([False, True], repeat=len(unknown)):
            state = {**seen, **dict(zip(unknown, assumed, strict=True))}
            trials = list(_frozen_trials(decision, decisions, ends, params, state))  # type: ignore[arg-type]
            answers.add(_decide(setup, trials, decision["number"]))
        out.append((decision["number"], decision["step"], answers.pop() if len(answers) == 1 else None))
    return out
