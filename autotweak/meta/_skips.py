"""What reading histories left out or changed, and why: one count and one example per reason.

A reason is a plain sentence, or one that names the record's value
(:class:`ValueReason`) or carries a hint from the record (:class:`HintedReason`); a
:class:`SkipReport` counts each under its rule, so that a column of bad values or of
misspelt names makes one entry of the summary.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["HintedReason", "SkipReport", "ValueReason"]


class ValueReason(str):
    """A skip reason that names the record's value, e.g. ``"param 'C' = 0.001 out of range [0.5, 5.0]"``.

    It reads as that whole sentence; a :class:`SkipReport` counts it under :attr:`rule`, the
    sentence without the value, and keeps one value as an example, so that a column of bad
    values makes one entry of the summary, not one per value.

    Example:
        >>> reason = ValueReason("param 'C'", 0.001, "out of range [0.5, 5.0]")
        >>> reason, reason.rule, reason.value
        ("param 'C' = 0.001 out of range [0.5, 5.0]", "param 'C' out of range [0.5, 5.0]", '0.001')
    """

    rule: str
    value: str

    def __new__(cls, subject: str, value: Any, rule: str) -> ValueReason:
        """``"<subject> = <value> <rule>"``, counted as ``"<subject> <rule>"``."""
        reason = super().__new__(cls, f"{subject} = {value!r} {rule}")
        reason.rule = f"{subject} {rule}"
        reason.value = repr(value)
        return reason


class HintedReason(str):
    """A reason with a hint from the record, e.g. a name the record has that was maybe meant.

    It reads as the rule with ``guess?`` and ``fix`` in brackets (those the rule ends with, if
    any); a :class:`SkipReport` counts it under :attr:`rule`, together with the records that
    have no hint or another one, and shows the hint given most often beside the rule, with
    how many give it where not all do, so that some records with a hint and some without make
    one entry of the summary, not two.

    Example:
        >>> reason = HintedReason("task key 'datset' is missing", "did you mean 'dataset'")
        >>> reason, reason.rule
        ("task key 'datset' is missing (did you mean 'dataset'?)", "task key 'datset' is missing")
        >>> reason.told(3, 4)
        "task key 'datset' is missing (did you mean 'dataset' in 3 of 4 records?)"
        >>> str(HintedReason("param 'lr' is not in the space (ignored)", "the space's 'learning_rate'"))
        "param 'lr' is not in the space (ignored; the space's 'learning_rate'?)"
    """

    rule: str
    guess: str
    fix: str

    def __new__(cls, rule: str, guess: str, fix: str = "") -> HintedReason:
        """``"<rule> (<guess>? <fix>)"``, counted as ``"<rule>"``."""
        reason = super().__new__(cls, _with_hint(rule, guess, fix))
        reason.rule, reason.guess, reason.fix = rule, guess, fix
        return reason

    def told(
        self, given: int, of: int, unit: str = "record", *, also: Sequence[tuple[HintedReason, int]] = ()
    ) -> str:
        """The reason for ``of`` records, ``given`` of which give this hint: how many, where not all.

        ``also``: other hints of the rule with the records that give them, said after this one.

        Example:
            >>> a, b = HintedReason("x is unknown", "'a'"), HintedReason("x is unknown", "'b'")
            >>> a.told(10, 15, also=[(b, 5)])
            "x is unknown ('a' in 10 of 15 records?; or 'b' in 5 of 15 records?)"
        """
        hints = [(self, given), *also]
        text = "; or ".join(_hint(h.guess + _some(n, of, unit), h.fix) for h, n in hints)
        return _bracketed(self.rule, text)


def _some(given: int, of: int, unit: str) -> str:
    return "" if given >= of else f" in {given} of {of} {unit}s"


def _hint(guess: str, fix: str) -> str:
    return f"{guess}?" + (f" {fix}" if fix else "")


def _with_hint(rule: str, guess: str, fix: str) -> str:
    """``rule (guess? fix)``, or inside the brackets ``rule`` ends with: ``... (ignored; guess? fix)``."""
    return _bracketed(rule, _hint(guess, fix))


def _bracketed(rule: str, hint: str) -> str:
    return f"{rule[:-1]}; {hint})" if rule.endswith(")") else f"{rule} ({hint})"


_PLAUSIBLE = 5  # a second hint given by 1 in this many of a rule's records, or more, is said too


@dataclass
class SkipReport:
    """Records left out while reading histories: a count and an example per reason.

    ``notes`` counts the changes made to records that were kept (values clipped into range,
    params filled in, params not in the space ignored); they are not skips. A reason that
    names the record's value (a :class:`ValueReason`) is counted without it, and one value
    is kept in ``values`` as an example.

    Example:
        >>> report = SkipReport()
        >>> report.add("metric 'acc' is missing", "mlflow:abc")
        >>> report.add("metric 'acc' is missing", "mlflow:def")
        >>> report.summary()
        "2 records skipped: 2 x metric 'acc' is missing (e.g. mlflow:abc)"
        >>> report.add(ValueReason("param 'C'", 9.0, "out of range [0.5, 5.0]"), "mlflow:ghi")
        >>> report.summary().split("; ")[1]
        "1 x param 'C' out of range [0.5, 5.0] (e.g. 9.0 at mlflow:ghi)"

    A :class:`HintedReason`, skip or note, is counted under its rule, and in ``hints`` as
    itself: the summary shows, beside each rule, the hint its records give most often.
    """

    counts: Counter[str] = field(default_factory=Counter)
    examples: dict[str, str] = field(default_factory=dict)
    notes: Counter[str] = field(default_factory=Counter)
    values: dict[str, str] = field(default_factory=dict)
    hints: Counter[HintedReason] = field(default_factory=Counter)  # records per hint, skips and notes

    def add(self, reason: str, source: str) -> None:
        """Count one skipped record."""
        rule = reason.rule if isinstance(reason, ValueReason | HintedReason) else str(reason)
        self.counts[rule] += 1
        self.examples.setdefault(rule, source)
        if isinstance(reason, ValueReason):
            self.values.setdefault(rule, reason.value)
        if isinstance(reason, HintedReason):
            self.hints[reason] += 1

    def note(self, change: str, n: int = 1) -> None:
        """Count a change made to ``n`` kept records (a value clipped, an extra param ignored)."""
        if isinstance(change, HintedReason):
            self.notes[change.rule] += n
            self.hints[change] += n
        else:
            self.notes[change] += n

    def note_all(self, changes: Mapping[str, int]) -> None:
        """Count each of ``changes`` (change -> records), e.g. a :class:`ParamMapper`'s notes."""
        for change, n in changes.items():
            self.note(change, n)

    def merge(self, other: SkipReport) -> SkipReport:
        """Both reports added up (a new report)."""
        merged = SkipReport(Counter(self.counts), notes=Counter(self.notes), hints=Counter(self.hints))
        merged.counts.update(other.counts)
        merged.notes.update(other.notes)
        merged.hints.update(other.hints)
        merged.examples = other.examples | self.examples  # the first report's example of a reason wins
        merged.values = other.values | self.values
        return merged

    @property
    def total(self) -> int:
        """Number of records skipped."""
        return sum(self.counts.values())

    def summary(self, unit: str = "record") -> str:
        """One line: how many records (or other ``unit``, such as tasks) were skipped and why."""
        if not self.counts:
            line = f"no {unit} skipped"
        else:
            parts = [
                f"{n} x {self._told(reason, n, unit)} (e.g. {self._example(reason)})"
                for reason, n in self.counts.most_common()
            ]
            line = f"{self.total} {unit}{'s' if self.total > 1 else ''} skipped: " + "; ".join(parts)
        if self.notes:
            told = (f"{n} x {self._told(c, n, unit)}" for c, n in self.notes.most_common())
            line += "; kept with changes: " + "; ".join(told)
        return line

    def _told(self, rule: str, n: int, unit: str) -> str:
        """``rule`` with the hint its ``n`` records give most often (the first met of a tie), if any.

        A second hint is said too where a fifth of the records or more give it: ``bs`` recorded
        as 64 in 10 records and as 4 in 5 is a batch size in some, a beam size in others.
        """
        hints = [(h, m) for h, m in self.hints.most_common() if h.rule == rule]
        if not hints:
            return rule
        (first, given), *others = hints
        also = [(h, m) for h, m in others[:1] if m * _PLAUSIBLE >= n]
        return first.told(given, n, unit, also=also)

    def _example(self, reason: str) -> str:
        source = self.examples.get(reason, "?")
        value = self.values.get(reason)
        return source if value is None else f"{value} at {source}"
