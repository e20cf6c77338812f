"""Sections of RESULTS.md that other benchmarks own survive a rewrite of the comparison."""

from __future__ import annotations

from pathlib import Path

from benchmarks._sections import kept_sections, replace_section


def test_a_section_is_appended_then_replaced_in_place(tmp_path: Path):
    path = tmp_path / "RESULTS.md"
    path.write_text("# comparison\n\ntable\n")
    replace_section(path, "scaling", "| 16 | 85% |")
    replace_section(path, "other", "x")
    replace_section(path, "scaling", "| 16 | 90% |")
    text = path.read_text()
    assert text.startswith("# comparison\n\ntable\n\n<!-- section:scaling -->\n| 16 | 90% |\n")
    assert "85%" not in text
    assert text.index("section:scaling") < text.index("section:other")


def test_kept_sections_are_returned_verbatim_and_none_without_a_file(tmp_path: Path):
    path = tmp_path / "RESULTS.md"
    assert kept_sections(path) == []
    replace_section(path, "scaling", "line 1\nline 2")
    path.write_text("# new comparison\n\n" + path.read_text())
    assert kept_sections(path) == ["<!-- section:scaling -->\nline 1\nline 2\n<!-- /section:scaling -->"]
