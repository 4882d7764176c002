"""Matching, stage by stage: regions, garment windows (one class per strategy), search and re-ranking, votes,
the catalogue side, and the Engine facade over them."""
