"""The library prints nothing a user did not ask for: only the CLI prints (README, "Logging")."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import yaml

from tests.conftest import base_spec, objective


def test_optimize_and_study_print_nothing_on_a_fresh_home(home):
    """Optuna's "A new study created" and MLflow's "Creating initial MLflow database tables" lines."""
    (home / "exp.yaml").write_text(yaml.safe_dump(base_spec(budget={"trials": 2}, sampler={"name": "qmc"})))
    code = (
        "import autotweak\n"
        "autotweak.optimize('exp.yaml')\n"
        "spec = {**autotweak.load_experiment('exp.yaml').to_dict(), 'name': 'own'}\n"
        "with autotweak.Study(spec) as study:\n"
        "    trial = study.ask()\n"
        "    study.tell(trial, 1.0)\n"
    )
    run = subprocess.run([sys.executable, "-c", code], cwd=home, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert (run.stdout, run.stderr) == ("", "")


def test_a_users_own_optuna_study_keeps_its_lines(home):
    """Only autotweak's own calls are quieted: Optuna's log lines for the user's studies stay."""
    code = "import autotweak.engine._storage, optuna\noptuna.create_study(study_name='mine')\n"
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert "A new study created in memory with name: mine" in run.stderr


def _run_script(home: Path, text: str) -> subprocess.CompletedProcess[str]:
    """Run ``text`` as the script ``study.py`` in ``home``, with no logging configured; it must succeed."""
    script = home / "study.py"
    script.write_text(text)
    run = subprocess.run([sys.executable, str(script)], cwd=home, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    return run


def test_a_refused_registration_is_said_on_stderr_with_no_logging_configured(home):
    """The study's results stand, but ``result.registered_model`` is ``None``: the user must be told why."""
    run = _run_script(
        home,
        "import autotweak, autotweak.engine._share as share\n"
        "def train(config, trial):\n"
        "    (trial.checkpoint_dir / 'm.txt').write_text('model')\n"
        "    trial.log_model(trial.checkpoint_dir / 'm.txt')\n"
        "    return config['x']\n"
        "def refuse(*args, **kwargs):\n"
        "    raise RuntimeError('the registry is down')\n"
        "if __name__ == '__main__':\n"
        "    share.register_model = refuse\n"
        "    spec = {'name': 'reg', 'objective': train, 'base': {'x': 0.5}, 'budget': {'trials': 1},\n"
        "            'tweaks': {'x': {'type': 'float', 'low': 0.0, 'high': 1.0}},\n"
        "            'metric': {'name': 'acc', 'direction': 'maximize'}, 'sampler': 'random'}\n"
        "    print(autotweak.optimize(spec).registered_model)\n",
    )
    assert run.stdout == "None\n"
    assert (
        "could not register the best trial's model as 'reg' (RuntimeError: the registry is down); the "
        "study's results stand: `autotweak report reg --register NAME` registers it later\n"
    ) in run.stderr, run.stderr


def test_a_registry_that_does_not_answer_is_said_at_once(home, monkeypatch):
    """MLflow's client would retry for minutes before the study could return."""
    monkeypatch.setenv("MLFLOW_REGISTRY_URI", "http://127.0.0.1:9")  # nothing listens on port 9
    started = time.monotonic()
    run = _run_script(
        home,
        "import autotweak\n"
        "def train(config, trial):\n"
        "    (trial.checkpoint_dir / 'm.txt').write_text('model')\n"
        "    trial.log_model(trial.checkpoint_dir / 'm.txt')\n"
        "    return config['x']\n"
        "if __name__ == '__main__':\n"
        "    spec = {'name': 'reg', 'objective': train, 'base': {'x': 0.5}, 'budget': {'trials': 1},\n"
        "            'tweaks': {'x': {'type': 'float', 'low': 0.0, 'high': 1.0}},\n"
        "            'metric': {'name': 'acc', 'direction': 'maximize'}, 'sampler': 'random'}\n"
        "    print(autotweak.optimize(spec).registered_model)\n",
    )
    assert time.monotonic() - started < 90, "one request to the registry, not minutes of retries"
    assert run.stdout == "None\n"
    assert (
        "could not register the best trial's model as 'reg' (model registry http://127.0.0.1:9: no "
        "MLflow server answers (connection refused); start it, or fix or unset MLFLOW_REGISTRY_URI, which "
        "names it); "
        "the study's results stand: after that, `autotweak report reg --register NAME` registers it\n"
    ) in run.stderr, run.stderr
    assert run.stderr.count("could not register") == 1, run.stderr


def test_a_study_whose_trials_all_failed_says_so_on_stderr_with_no_logging_configured(home):
    """``optimize`` returns (``best_value`` is ``None``): the warning is what tells the user."""
    run = _run_script(
        home,
        "import autotweak\n"
        "def train(config):\n"
        "    raise FileNotFoundError('data/train.csv')\n"
        "if __name__ == '__main__':\n"
        "    spec = {'name': 'broken', 'objective': train, 'base': {'x': 0.5}, 'budget': {'trials': 2},\n"
        "            'tweaks': {'x': {'type': 'float', 'low': 0.0, 'high': 1.0}},\n"
        "            'metric': {'name': 'acc', 'direction': 'maximize'}, 'sampler': 'random'}\n"
        "    print(autotweak.optimize(spec).best_value)\n",
    )
    assert run.stdout == "None\n"
    assert (
        "study 'broken': no trial completed, 2 failed; the first, trial 0, failed with: FileNotFoundError: "
        "data/train.csv. Fix the objective, then resume the study"
    ) in run.stderr, run.stderr


def test_a_resume_that_runs_no_trial_says_why_with_no_logging_configured(home):
    """A notebook cell ``optimize(spec, resume=True)`` run again returned the same result in silence."""
    run = _run_script(
        home,
        "import sys, autotweak\n"
        "def train(config):\n"
        "    return config['x']\n"
        "if __name__ == '__main__':\n"
        "    spec = {'name': 'again', 'objective': train, 'base': {'x': 0.5}, 'budget': {'trials': 2},\n"
        "            'tweaks': {'x': {'type': 'float', 'low': 0.0, 'high': 1.0}},\n"
        "            'metric': {'name': 'acc', 'direction': 'maximize'}, 'sampler': 'random'}\n"
        "    print(autotweak.optimize(spec).trials_run, file=sys.stderr)\n"
        "    print(autotweak.optimize(spec, resume=True).trials_run, file=sys.stderr)\n",
    )
    said = (
        "study 'again': no trial run: the study has 2 trial(s) and its budget is 2; 'budget.trials' is the "
        "study's total, not extra trials: set it to 12 and resume to run 10 more"
    )
    assert run.stderr.splitlines() == ["2", said, "0"], run.stderr


def test_qmc_on_a_conditional_space_prints_no_line_per_trial(home):
    """cnn's momentum exists only with sgd, so QMC samples it on its own; as for cmaes and gp, that is
    not a warning at every trial."""
    spec = base_spec(
        objective=objective("config_only"),
        base={  # the baseline, on adamw, is trial 0: QMC's space, which it keeps, then lacks momentum
            "x": 0.0,
            "lr": 1e-3,
            "weight_decay": 1e-4,
            "channels": 16,
            "conv_layers": 2,
            "kernel_size": 3,
            "dropout": 0.1,
            "batch_size": 64,
            "optimizer": "adamw",
        },
        tweaks={"extends": "cnn"},
        budget={"trials": 8},
        sampler={"name": "qmc"},
    )
    runs = {  # the library, then the CLI
        "lib": ["-c", "import autotweak\nautotweak.optimize('exp.yaml')\n"],
        "cli": ["-m", "autotweak", "optimize", "exp.yaml"],
    }
    for name, argv in runs.items():
        (home / "exp.yaml").write_text(yaml.safe_dump({**spec, "name": name}))
        run = subprocess.run([sys.executable, *argv], cwd=home, capture_output=True, text=True, timeout=300)
        assert run.returncode == 0, run.stderr
        assert "sampled independently" not in run.stderr, name
