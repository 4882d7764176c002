"""``match``: rank the catalogue's products for a clip, a folder of clips or a live stream, and print the answer."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from engine.categories import fit
from engine.cli.common import progress_bar, settings_from
from engine.errors import EngineError
from engine.pipeline.live import LiveMatch
from engine.pipeline.sources import ClipPaths, source_of
from engine.workspace import ready_engine


NAME_COLUMNS = 34  # terminal columns of the name column (wide characters count two)


def format_result(result, top_k: int) -> str:
    """A clip's answer: its verdict in a sentence, then the ranking as a table ordered by its key, the evidence
    (each product's best similarity per sampled frame, averaged over the frames), with votes and best similarity."""
    n = len(result.frames)
    lines = [f"{result.clip}  ({result.timings.get('total', sum(result.timings.values())):.2f} s)",
             f"  {verdict_sentence(result)}"]
    if not result.ranking:
        return "\n".join(lines)
    key = "votes" if result.settings.get("rank_by") == "votes" else "evidence"
    lines.append(f"  {'#':>2}  {'product':<10} {fit('name', NAME_COLUMNS)} {'evidence':>8} {'votes':>7} "
                 f"{'best sim':>8}   (ranked by {key})")
    for i, p in enumerate(result.ranking[:top_k], 1):
        lines.append(f"  {i:>2}. {p.product_id:<10} {fit(p.name, NAME_COLUMNS)} {p.mean_similarity:>8.3f} "
                     f"{f'{p.votes}/{n}':>7} {p.best_similarity:>8.3f}")
    return "\n".join(lines)


def verdict_sentence(result) -> str:
    """"confident: 900001 (Cream checked trousers): 10 of 10 sampled frames voted for it, ...", the uncertain case
    with its runner-up, or "not in the catalogue: closest ..., not a match"; the votes are always said to be whose."""
    v, top = result.verdict, result.top
    n = len(result.frames)
    if top is None:
        return "no verdict: no catalogue product matched any sampled frame"
    said = f"{top.product_id} ({top.name})" if top.name and top.name != top.product_id else top.product_id
    own = f"{top.votes} of {n} sampled frames voted for {top.product_id}, evidence {top.mean_similarity:.3f}"
    if v.runner_up is None:
        return f"confident: {said} is shown; {own}"
    second = next(p for p in result.ranking if p.product_id == v.runner_up)
    rival = f"runner-up {second.product_id}: {second.votes} votes, evidence {second.mean_similarity:.3f}"
    if v.confident:
        return f"confident: {said} is shown; {own} ({rival})"
    if v.absent:
        return (f"not in the catalogue: closest {', '.join(v.closest)}, not a match; {own}; "
                f"{v.signals.members - v.signals.members_agree} of {v.signals.members} models rank another first")
    return (f"uncertain: most likely {said}, but {second.product_id} is close; {own}; {rival} "
            f"(evidence margin {v.evidence_margin:+.3f})")


def _print_result(result, top_k: int) -> None:
    print(format_result(result, top_k))


def cmd_match(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    source = ClipPaths.folder(args.clip) if args.batch else source_of(args.clip)  # a folder: its clips, in order
    engine = ready_engine(settings, progress=progress_bar("index"))
    examples = engine.examples()
    if len(examples):
        print(f"note: {len(examples)} livestream example region(s) (corrections) are searched with the catalogue",
              file=sys.stderr)
    if examples.note:
        print(f"warning: {examples.note}", file=sys.stderr)
    if args.live:
        if isinstance(source, ClipPaths):
            raise EngineError(f"{args.clip}: --live reads one stream, not a folder of clips")
        return _match_live(engine, str(source.path), args)
    results, failed = [], 0
    if isinstance(source, ClipPaths):
        bar = progress_bar("match")
        for clip, result in engine.match(source, bar):
            if isinstance(result, EngineError):
                failed += 1
                print(f"error: {result}", file=sys.stderr)
                continue
            results.append(result.to_dict())
            _print_result(result, settings.search.top_k)
        bar("done", 1.0)
    else:
        result = engine.match(source, progress_bar(source.name))
        results.append(result.to_dict())
        _print_result(result, settings.search.top_k)
    if args.json:
        Path(args.json).write_text(json.dumps(results if isinstance(source, ClipPaths) else results[0], ensure_ascii=False, indent=1))
    return 0 if results and not failed else (2 if not results else 1)


def _match_live(engine, url: str, args: argparse.Namespace) -> int:
    """``match URL --live``: one line per sampled frame, the ranking over the recent frames when it changes."""
    live = LiveMatch(engine, url)  # a frame every stream_every seconds (--every)
    shown: list[str] = []
    try:
        while not live.ended and (args.max_frames <= 0 or live.frames_seen < args.max_frames):
            update = live.step()
            for f in update.added:
                print(f"frame {f.frame_index:>6} at {f.time_s:7.1f} s: votes {f.voted_product or '-'}", flush=True)
            top = [p.product_id for p in update.result.ranking[:3]]
            if update.added and top != shown:
                shown = top
                v = update.result.verdict
                print(f"  ranking over the last {len(update.result.frames)} frames: {', '.join(top)} ({v.level})",
                      flush=True)
    except KeyboardInterrupt:
        pass
    finally:
        live.close()
    if live.last is None:
        raise EngineError(f"{url}: the stream ended before a frame could be matched")
    _print_result(live.last, engine.settings.search.top_k)
    if args.json:
        Path(args.json).write_text(json.dumps(live.last.to_dict(), ensure_ascii=False, indent=1))
    return 0
