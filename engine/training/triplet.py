"""Triplet training of a projection head over the frozen backbone (``python -m engine train-embedding``).

- **Batches** hold P products x K regions (class-balanced). Products are drawn in pairs of the same
  merged category where possible, so the hardest negatives are look-alikes of the same kind.
- **Loss**: batch-hard triplet loss (Hermans et al., 2017) on L2-normalised outputs. With clip
  annotations the anchors are clip regions and their positives are shop regions of the same
  product (cross-domain: the query side and the catalogue side); without them every region anchors.
- **Self-supervised mode** (no clip annotations needed): every shop region is its own class and its
  positives are strongly augmented views of itself (FaceNet-style instance triplets).
- **Augmentation** (colour, flips, small rotations, crops, blur, JPEG) is applied to the crops; the
  frozen backbone embeds each view once, then the head trains on those cached features, so CPU
  training takes minutes. ``weight_decay_to_init`` keeps the head near its identity start, which
  matters with a few dozen products.

Everything is seeded: the same data, seed and settings give the same checkpoint.
"""

from __future__ import annotations

import random
import time
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from engine.training.augment import augment, train_transform
from engine.io.catalogue import Catalogue
from engine.models.heads import next_version, projection_head, save_checkpoint
from engine.training.data import ImageReader, TrainRegion, product_regions

Progress = Callable[[str, float], None]


@dataclass(frozen=True)
class TripletConfig:
    mode: str = "cross-domain"  # "cross-domain" (needs clip annotations, falls back), or "self-supervised"
    views: int = 4  # augmented views per region, besides the clean one
    out_dim: int = 0  # 0: keep the backbone's dimension (identity start)
    products_per_batch: int = 8  # P
    regions_per_product: int = 4  # K
    steps: int = 400
    lr: float = 1e-3
    margin: float = 0.2
    weight_decay_to_init: float = 0.1  # L2 pull of the weights towards their initial value
    seed: int = 0


@dataclass
class TrainReport:
    checkpoint: str
    mode: str
    products: list[str]
    regions: dict[str, int]
    views: int
    seconds: dict[str, float]
    loss_first: float
    loss_last: float
    active_triplets_last: float
    config: dict = field(default_factory=dict)


def embed_views(embedder, regions: list[TrainRegion], views: int, strength: str, seed: int,
                progress: Progress = lambda s, f: None) -> tuple[np.ndarray, list[int]]:
    """Backbone features of every region: view 0 clean, then ``views`` augmented views.

    Returns (features (n_kept, 1 + views, dim), indices of the regions that could be read).
    """
    import torch

    torch.manual_seed(seed)
    transform = train_transform(strength)
    reader = ImageReader()
    feats, kept = [], []
    for i, region in enumerate(regions):
        progress("features", i / max(1, len(regions)))
        c = reader.crop(region)
        if c is None:
            continue
        crops = [c] + augment([c] * views, transform)
        feats.append(embedder.embed(crops, 8))
        kept.append(i)
    progress("features", 1.0)
    dim = embedder.dim
    return (np.stack(feats) if feats else np.zeros((0, 1 + views, dim), np.float32)), kept


def batch_hard_loss(emb, labels, margin: float, anchor_mask=None, positive_mask=None):
    """Batch-hard triplet loss. Rows of ``emb`` are L2-normalised.

    ``anchor_mask`` (N,) selects the anchors; ``positive_mask`` (N,) the rows allowed as positives
    (the other domain, for cross-domain training). Returns (loss, fraction of active triplets).
    """
    import torch

    dist = torch.cdist(emb, emb)
    same = labels[:, None] == labels[None, :]
    eye = torch.eye(len(labels), dtype=torch.bool, device=emb.device)
    pos_ok = same & ~eye
    if positive_mask is not None:
        pos_ok = pos_ok & positive_mask[None, :]
    anchors = pos_ok.any(1) & (~same).any(1)
    if anchor_mask is not None:
        anchors = anchors & anchor_mask
    if not anchors.any():
        return emb.sum() * 0.0, 0.0
    hardest_pos = torch.where(pos_ok, dist, torch.full_like(dist, -1.0)).max(1).values
    hardest_neg = torch.where(~same, dist, torch.full_like(dist, 1e9)).min(1).values
    losses = torch.relu(hardest_pos - hardest_neg + margin)[anchors]
    return losses.mean(), float((losses > 0).float().mean())


class PKSampler:
    """P classes x K samples per batch; classes drawn in same-group pairs where possible."""

    def __init__(self, labels: list[str], groups: dict[str, str], p: int, k: int, seed: int) -> None:
        self.by_label: dict[str, list[int]] = defaultdict(list)
        for i, lab in enumerate(labels):
            self.by_label[lab].append(i)
        self.labels = sorted(self.by_label)
        self.group_of = {lab: groups.get(lab, "") for lab in self.labels}
        self.by_group: dict[str, list[str]] = defaultdict(list)
        for lab in self.labels:
            self.by_group[self.group_of[lab]].append(lab)
        self.p, self.k = min(p, len(self.labels)), k
        self.rng = random.Random(seed)

    def batch(self) -> list[int]:
        chosen: list[str] = []
        pool = self.labels[:]
        self.rng.shuffle(pool)
        for lab in pool:
            if len(chosen) >= self.p:
                break
            if lab in chosen:
                continue
            chosen.append(lab)
            mates = [m for m in self.by_group[self.group_of[lab]] if m not in chosen]
            if mates and len(chosen) < self.p:
                chosen.append(self.rng.choice(mates))
        out = []
        for lab in chosen:
            idx = self.by_label[lab]
            out += [self.rng.choice(idx) for _ in range(self.k)] if len(idx) < self.k else self.rng.sample(idx, self.k)
        return out


def _training_regions(catalogue: Catalogue, products: set[str] | None, mode: str) -> tuple[list[TrainRegion], str]:
    """The annotated regions to train on, and the mode they allow (cross-domain falls back to shop-only)."""
    regions = product_regions(catalogue, products, clips=mode == "cross-domain")
    if mode == "cross-domain" and not any(r.domain == "clip" for r in regions):
        mode = "shop-only"  # no clip annotations: product classes from shop images alone
    if mode == "self-supervised":
        regions = [r for r in regions if r.domain == "shop"]
    if len({r.product_id for r in regions}) < 2 and mode != "self-supervised":
        raise ValueError("triplet training needs annotated regions of at least two products")
    if not regions:
        raise ValueError("no annotated product regions to train on")
    return regions, mode


def _samples(feats: np.ndarray, regions: list[TrainRegion], mode: str,
             config: TripletConfig) -> tuple[Any, Any, Any, PKSampler]:
    """Samples are (region, view) pairs: their features, label ids and clip flags (tensors), and a sampler."""
    import torch

    n_regions, n_views, dim = feats.shape
    x_all = torch.from_numpy(feats.reshape(-1, dim))
    if mode == "self-supervised":
        labels = [f"{i}" for i in range(n_regions) for _ in range(n_views)]
        groups = {f"{i}": r.group for i, r in enumerate(regions)}
    else:
        labels = [r.product_id for r in regions for _ in range(n_views)]
        groups = {r.product_id: r.group for r in regions}
    is_clip = torch.tensor([r.domain == "clip" for r in regions for _ in range(n_views)])
    label_ids = {lab: i for i, lab in enumerate(sorted(set(labels)))}
    y_all = torch.tensor([label_ids[lab] for lab in labels])
    sampler = PKSampler(labels, groups, config.products_per_batch, config.regions_per_product, config.seed)
    return x_all, y_all, is_clip, sampler


def _fit(feats: np.ndarray, regions: list[TrainRegion], mode: str, out_dim: int, config: TripletConfig,
         progress: Progress) -> tuple[Any, list[float], list[float]]:
    """Train a fresh head on the cached features; returns (head, loss per step, active triplets per step)."""
    import torch

    x_all, y_all, is_clip, sampler = _samples(feats, regions, mode, config)
    dim = feats.shape[2]
    head = projection_head(dim, out_dim)
    init = head.weight.detach().clone()
    opt = torch.optim.Adam(head.parameters(), lr=config.lr)
    losses, active = [], []
    for step in range(config.steps):
        if step % 20 == 0:
            progress("train", step / config.steps)
        ids = torch.tensor(sampler.batch())
        z = torch.nn.functional.normalize(head(x_all[ids]), dim=1)
        if mode == "cross-domain":
            clip_rows = is_clip[ids]
            # clip anchors with shop positives; shop anchors with shop positives where no clips are batched
            loss_x, act = batch_hard_loss(z, y_all[ids], config.margin, clip_rows, ~clip_rows)
            loss_s, _ = batch_hard_loss(z, y_all[ids], config.margin, ~clip_rows, ~clip_rows)
            loss = loss_x + 0.5 * loss_s
        else:
            loss, act = batch_hard_loss(z, y_all[ids], config.margin)
        reg = config.weight_decay_to_init * (head.weight - init).pow(2).sum() if out_dim == dim else 0.0
        opt.zero_grad()
        (loss + reg).backward()
        opt.step()
        losses.append(float(loss.detach()))
        active.append(act)
    progress("train", 1.0)
    return head, losses, active


def _save_head(head, embedder, catalogue: Catalogue, mode: str, config: TripletConfig, product_ids: list[str],
               out: str | Path | None, home: Path | None) -> Path:
    """Save the head's weight with its metadata, to ``out`` or the next version under ``<home>/models``."""
    meta = {
        "base_key": embedder.key,
        "base_name": embedder.name,
        "in_dim": head.in_features,
        "out_dim": head.out_features,
        "mode": mode,
        "config": asdict(config),
        "products": product_ids,
        "catalogue": catalogue.root,
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    folder = (home or Path(".")) / "models"
    path = Path(out) if out else next_version(folder, f"embedding-head-{mode}")
    save_checkpoint(path, "projection-head", {"weight": head.weight.detach().clone()}, meta)
    return path


def train_projection(
    embedder, catalogue: Catalogue, out: str | Path | None = None, config: TripletConfig = TripletConfig(),
    products: set[str] | None = None, progress: Progress = lambda s, f: None, home: Path | None = None,
) -> TrainReport:
    """Train a projection head on ``products`` of ``catalogue`` (all by default) and save a checkpoint."""
    import torch

    t0 = time.perf_counter()
    torch.manual_seed(config.seed)
    random.seed(config.seed)
    np.random.seed(config.seed)
    regions, mode = _training_regions(catalogue, products, config.mode)
    strength = "strong" if mode == "self-supervised" else "normal"
    feats, kept = embed_views(embedder, regions, config.views, strength, config.seed, progress)
    regions = [regions[i] for i in kept]
    t_feat = time.perf_counter() - t0
    n_views, dim = feats.shape[1], feats.shape[2]
    head, losses, active = _fit(feats, regions, mode, config.out_dim or dim, config, progress)
    product_ids = sorted({r.product_id for r in regions})
    path = _save_head(head, embedder, catalogue, mode, config, product_ids, out, home)
    window = max(1, len(losses) // 10)
    return TrainReport(
        checkpoint=str(path), mode=mode, products=product_ids,
        regions={d: sum(r.domain == d for r in regions) for d in ("shop", "clip")},
        views=n_views,
        seconds={"features": round(t_feat, 1), "total": round(time.perf_counter() - t0, 1)},
        loss_first=round(float(np.mean(losses[:window])), 4),
        loss_last=round(float(np.mean(losses[-window:])), 4),
        active_triplets_last=round(float(np.mean(active[-window:])), 3),
        config=asdict(config),
    )
