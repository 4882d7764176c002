"""The nested leave-one-clip-out figure of a saved comparison with and without each added part: the candidates of
``evaluate --compare --report R`` chosen among with a part's rows left out, then with them in.

    python scripts/nested_subsets.py R --part "Lite3=+ Lite3" --part "keypoints=body regions from keypoints"

A part is ``label=text``: its rows are the candidates whose name contains the text. ``--extra name=report.json`` adds
a set-up evaluated on its own (``evaluate --report``) as a candidate after the others. Prints, per line, the candidates
used and the nested figure (clip top-1, MRR, region top-1 leave-clip-out, the set-up chosen on all clips).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from anywhere: the engine beside this folder

from engine.eval.nested import format_nested, nested_loco  # noqa: E402
from engine.types import EvalReport  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("report")
    ap.add_argument("--part", action="append", default=[], help="label=text in the candidates' names")
    ap.add_argument("--folds", action="store_true", help="print each figure's folds")
    ap.add_argument("--extra", action="append", default=[],
                    help="name=report.json: a set-up evaluated on its own (evaluate --report), added as a candidate")
    args = ap.parse_args()
    data = json.loads(Path(args.report).read_text(encoding="utf-8"))
    rows = [(r["setup"], EvalReport.from_dict(r["report"])) for r in data["rows"] if r["candidate"]]
    for extra in args.extra:
        name, _, path = extra.rpartition("=")
        rows.append((name, EvalReport.from_dict(json.loads(Path(path).read_text(encoding="utf-8")))))
    parts = dict(p.split("=", 1) for p in args.part)

    def figure(label: str, keep: list) -> None:
        n = nested_loco(keep)
        print(f"{label:<34} {len(keep):>2} candidates  nested {n.hits}/{len(n.folds)}  MRR {n.mrr:.3f}  "
              f"region {n.region_top1:.3f}  chosen on all: {n.chosen_on_all}")
        if args.folds:
            print(format_nested(n))

    def without(texts: list[str]) -> list:
        return [(name, r) for name, r in rows if not any(t in name for t in texts)]

    figure("without every part", without(list(parts.values())))
    for label, text in parts.items():
        others = [t for t in parts.values() if t != text]
        figure(f"with {label} only", without(others))
        figure(f"all but {label}", without([text]))
    figure("with every part", rows)


if __name__ == "__main__":
    main()
