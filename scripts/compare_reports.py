"""python scripts/compare_reports.py BEFORE.json AFTER.json

Compare two `evaluate` JSON reports: every clip's ranking (product ids in order, with their votes and evidence),
every frame's vote, and every region's rank. Prints what differs; exit 1 when the rankings or votes differ."""
import json, sys

def key(report):
    clips = {}
    for c in report["clips"]:
        r = c["result"]
        clips[c["video_id"]] = {
            "ranking": [(p["product_id"], p["votes"], round(p.get("mean_similarity", 0.0), 6)) for p in r["ranking"]],
            "votes": [(f["frame_index"], f.get("voted_product")) for f in r["frames"]],
            "truth_rank": c["truth_rank"],
        }
    return clips

a, b = (json.load(open(p)) for p in sys.argv[1:3])
ka, kb = key(a), key(b)
diff = 0
for vid in sorted(set(ka) | set(kb)):
    for part in ("ranking", "votes", "truth_rank"):
        if ka.get(vid, {}).get(part) != kb.get(vid, {}).get(part):
            diff += 1
            print(f"{vid} {part} differs:\n  before {ka.get(vid, {}).get(part)}\n  after  {kb.get(vid, {}).get(part)}")
ra = [(r.get("video_id"), r.get("rank")) for r in a.get("regions", [])]
rb = [(r.get("video_id"), r.get("rank")) for r in b.get("regions", [])]
print(f"clips {len(ka)} / {len(kb)}; ranked products per clip {[len(v['ranking']) for v in ka.values()]}; "
      f"frames voted {sum(len(v['votes']) for v in ka.values())}; regions {len(ra)} / {len(rb)}, same ranks: {ra == rb}")
print("metrics before", a["metrics"]); print("metrics after ", b["metrics"])
print("IDENTICAL rankings and votes" if diff == 0 else f"{diff} differences")
sys.exit(1 if diff else 0)
