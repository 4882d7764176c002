"""Every category of the competition's data has an English name; the command line's table stays aligned when a
name is in Chinese (wide characters count two columns)."""

from __future__ import annotations

import json

import pytest

from engine.categories import ALIASES, CATEGORY_EN, display_width, english, fit
from engine.types import FrameVote, MatchResult, ProductScore
from tests.conftest import SHARED

DEV = SHARED.parent / "watchlive-dev"


def _labels(root) -> set[str]:
    labels: set[str] = set()
    for f in list(root.glob("image_annotation/*/*.json")) + list(root.glob("video_annotation/*.json")):
        data = json.loads(f.read_text(encoding="utf-8"))
        boxes = data.get("annotations") or [a for fr in data.get("frames", []) for a in fr.get("annotations", [])]
        labels |= {a["label"] for a in boxes}
    return labels


def test_the_competition_has_23_categories_each_with_an_english_name() -> None:
    assert len(CATEGORY_EN) == 23
    names = list(CATEGORY_EN.values())
    assert len(set(names)) == 23 and all(n.isascii() and n for n in names)
    assert all(a in ALIASES and ALIASES[a] in CATEGORY_EN for a in ALIASES)
    assert english("长袖衬衫") == "long-sleeve shirt" and english("短马甲") == "short vest"
    assert english("古装") == english("古风")  # another spelling of the same category
    assert english("毛呢大衣") == "毛呢大衣"  # unknown: shown as written


@pytest.mark.shared
@pytest.mark.parametrize("dataset", ["watchlive-sample", "watchlive-dev"])
def test_every_label_in_the_shared_data_has_an_english_name(dataset: str) -> None:
    root = SHARED.parent / dataset
    labels = _labels(root)
    assert len(labels) >= 10, labels  # the annotations were read
    missing = sorted(label for label in labels if not english(label).isascii())
    assert not missing, f"no English name for {missing}"


def test_fit_pads_and_cuts_by_display_width() -> None:
    assert display_width("长袖衬衫") == 8 and display_width("abc") == 3
    for text in ("short", "长袖衬衫 long-sleeve shirt", "长" * 30, "a长" * 20):
        for width in (7, 12, 34):
            assert display_width(fit(text, width)) == width
    assert fit("长袖衬衫", 6) == "长袖… "  # cut with an ellipsis, the lost half column padded


def _score(pid: str, name: str, votes: int, mean: float) -> ProductScore:
    return ProductScore(pid, name, votes, votes / 4, round(mean + 0.05, 3), mean, (), None)


def test_the_command_lines_table_stays_aligned_with_chinese_names() -> None:
    from engine.cli.match import format_result

    ranking = (_score("012814", "012814 · 长袖衬衫", 3, 0.47), _score("000117", "000117 · short skirt", 1, 0.436),
               _score("900009", "超长的中文商品名称超长的中文商品名称超长的中文商品名称", 0, 0.2),
               _score("900010", "plain", 0, 0.1))
    frames = tuple(FrameVote(i, float(i), (), "012814" if i < 3 else "000117", 0.5, "detector") for i in range(4))
    text = format_result(MatchResult("012814.mp4", frames, ranking, {"total": 1.0}, {"rank_by": "similarity"}), 5)
    lines = text.splitlines()
    rows = [line for line in lines[1:] if line.split()[0].rstrip(".").isdigit()]
    assert len(rows) == 4
    header = next(line for line in lines if "evidence" in line and "votes" in line and "ranked by" in line)
    ends = {display_width(row) for row in rows}
    assert len(ends) == 1, text  # every row ends in the same terminal column
    # the number columns start in the same terminal column in every row, the header's included
    evidence_at = display_width(header[: header.index("evidence") + len("evidence")])
    for row in rows:
        cells = row.split()
        assert display_width(row[: row.rindex(cells[-3]) + len(cells[-3])]) == evidence_at, text
    assert "长袖衬衫" in text and "…" in text  # shown as written; the long one cut, not wrapping
    # rows are in the order of the column they are ranked by, and the verdict names whose votes they are
    assert [float(r.split()[-3]) for r in rows] == sorted((float(r.split()[-3]) for r in rows), reverse=True)
    assert "3 of 4 sampled frames voted for 012814" in lines[1]


def test_an_unknown_category_is_shown_as_written_in_a_cjk_capable_font_and_cut_not_wrapped() -> None:
    from engine.render import ascii_label
    from ui.components import CSS, category_label

    assert category_label("毛呢大衣") == "毛呢大衣"  # its own text, not an empty or invented name
    assert ascii_label("毛呢大衣") == ""  # drawn on images (OpenCV has no CJK glyphs): no tag rather than "????"
    assert ascii_label("长袖衬衫") == "long-sleeve shirt"
    assert "Noto Sans CJK SC" in CSS and "Microsoft YaHei" in CSS  # fallbacks after the app's own font
    assert "text-overflow: ellipsis" in CSS and "white-space: nowrap" in CSS  # one line per card field
