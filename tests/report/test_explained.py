"""The report names what it shows: the meta-learner's predicted rank, the learned pruner's
decisions, and the ablation trials apart from the search."""

from __future__ import annotations

import optuna
from optuna.trial import TrialState, create_trial

from autotweak.curves import LearnedCurvePruner
from autotweak.curves._pruner import Decision
from autotweak.report._ablation import ABLATION_ATTR
from autotweak.report._accounting import compute_account
from autotweak.report._proposals import guard_note, proposals_section
from autotweak.report._pruning import pruning_section

META = {"pruner": {"kind": "pruner", **LearnedCurvePruner(model=None, n_steps=20, threshold=0.2).meta}}


def _proposal_study() -> optuna.Study:
    study = optuna.create_study(direction="maximize")
    study.add_trial(create_trial(params={}, distributions={}, value=0.7037))
    proposals = [
        {"params": {"lr": 0.08}, "predicted": 0.1555, "uncertainty": 0.3, "sources": [], "trial_number": 0}
    ]
    study._storage.set_study_system_attr(study._study_id, "autotweak.meta_proposals", proposals)
    return study


def test_the_predicted_column_says_it_is_a_rank_not_the_metric():
    section = proposals_section(_proposal_study())
    assert section is not None
    assert section.header[2] == "predicted rank (share of configs beaten)"
    assert section.rows[0][2:4] == ["0.1555 ± 0.3", "0.7037"]
    text = " ".join(section.notes)
    assert "share of a past task's configs the proposal is expected to beat" in text
    assert "not a value of the metric" in text and "Compare it with the rank column" in text
    html = section.to_html()  # --html renders the same section
    assert "predicted rank (share of configs beaten)" in html and "not a value of the metric" in html


def test_a_proposals_rank_is_among_the_searchs_completed_trials_not_the_ablation_trials():
    """The bundled example's report said '27 completed trials' under a state table of 17 (--ablate 10)."""
    study = _proposal_study()
    study.add_trial(create_trial(params={}, distributions={}, value=0.6))
    for value in (0.9, 0.8):  # report --ablate measured these: counted apart from the search
        study.add_trial(
            create_trial(params={}, distributions={}, value=value, user_attrs={ABLATION_ATTR: True})
        )
    section = proposals_section(study)
    assert section is not None
    assert section.rows[0][3:5] == ["0.7037", "1 of 2"]
    assert (
        section.notes[0]
        == "Rank: where the proposal's actual value falls among the study's 2 completed trials (1 = best)."
    )


def test_the_guard_note_counts_the_searchs_results_not_the_ablation_trials():
    """``report --ablate 10`` after 2 results: the guard, which judges after 5, was not checked."""
    study = _proposal_study()
    study.add_trial(create_trial(params={}, distributions={}, value=0.6))
    for value in range(10):
        study.add_trial(
            create_trial(params={}, distributions={}, value=value, user_attrs={ABLATION_ATTR: True})
        )
    assert guard_note(study) == (
        "Negative-transfer guard: not checked (it judges the past once 5 results are in; this study has 2)."
    )


def _pruned(study: optuna.Study, decision: Decision) -> None:
    trial = create_trial(
        state=TrialState.PRUNED, params={}, distributions={}, intermediate_values={decision.step: 0.5}
    )
    trial.user_attrs.update(decision.attrs())
    study.add_trial(trial)


def _learned(step: int, p: float) -> Decision:
    return Decision(True, "learned", step, p, (0.61, 0.70, 0.78), 0.9, 7)


def test_the_pruning_section_lists_the_learned_rules_decisions():
    study = optuna.create_study(direction="maximize")
    study.set_user_attr("autotweak.meta", META)
    study.add_trial(create_trial(params={}, distributions={}, value=0.95))
    _pruned(study, _learned(4, 0.0321))
    _pruned(study, Decision(True, "MedianPruner", 2, n_complete=1))
    section = pruning_section(study)
    assert section is not None
    assert section.header == ["trial", "step", "p(top-k)", "predicted final (q10 to q90)", "k-th best"]
    assert section.rows == [["1", "4", "0.0321 < 0.2", "0.7 (0.61 to 0.78)", "0.9"]]
    text = " ".join(section.notes)
    assert "1 of the 2 pruned trials" in text and "top 5" in text
    assert "autotweak.pruner." in text  # where the full record lives


def test_the_pruning_table_shows_the_most_recent_ten_and_says_how_many_more():
    study = optuna.create_study(direction="maximize")
    study.set_user_attr("autotweak.meta", META)
    for number in range(25):
        _pruned(study, _learned(3, number / 1000))
    section = pruning_section(study)
    assert section is not None
    assert [row[0] for row in section.rows] == [str(n) for n in range(24, 14, -1)]
    assert "the 10 most recent; 15 more" in " ".join(section.notes)


def test_no_pruning_section_without_learned_decisions():
    study = optuna.create_study()
    _pruned(study, Decision(True, "MedianPruner", 2))
    assert pruning_section(study) is None


def test_the_learned_pruner_whose_fallback_stopped_every_trial_says_so():
    study = optuna.create_study(direction="maximize")
    study.set_user_attr("autotweak.meta", META)  # the learned pruner, as a spec that names none gets
    study.add_trial(create_trial(params={}, distributions={}, value=0.95))
    _pruned(study, Decision(True, "MedianPruner", 5, n_complete=5))
    _pruned(study, Decision(True, "MedianPruner", 5, n_complete=6))
    section = pruning_section(study)
    assert section is not None and not section.rows
    text = " ".join(section.notes)
    assert "decided none of the 2 pruned trials" in text and "MedianPruner" in text, text


def test_ablation_trials_are_counted_apart_from_the_search():
    study = optuna.create_study()
    for _ in range(3):
        study.add_trial(create_trial(params={}, distributions={}, value=1.0))
    for _ in range(2):
        study.add_trial(
            create_trial(params={}, distributions={}, value=1.0, user_attrs={ABLATION_ATTR: True})
        )
    account = compute_account(study)
    assert account.trials == 3 and account.ablation == 2
    notes = " ".join(account.section().notes)
    assert (
        "Compute used: 3.00 full trainings over 3 trials, and 2.00 over 2 ablation trials (report --ablate)."
        in notes
    )


def test_the_docs_list_every_tag_the_pruner_writes():
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    keys = set(_learned(4, 0.01).attrs())
    assert len(keys) == 8
    for doc in ("README.md", "docs/mlflow-ui.md", "meta/curves.md"):
        text = (root / doc).read_text()
        assert all(f"`{key}`" in text for key in keys), (doc, [k for k in keys if f"`{k}`" not in text])


def test_the_pruning_section_of_a_study_without_autotweak_setup_leaves_the_threshold_out():
    study = optuna.create_study(direction="maximize")
    _pruned(study, _learned(4, 0.0321))
    section = pruning_section(study)
    assert section is not None and section.rows[0][2] == "0.0321"
    assert (
        "The learned rule stopped every pruned trial: each when its chance of ending in the top k"
        in (section.notes[0])
    )
    assert section.notes[0].endswith("fell below the pruner's threshold.")
