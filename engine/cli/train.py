"""The training commands: ``train-embedding`` (a projection head, triplet loss) and ``train-garments`` (the
garment-region head, with AP@0.5 on held-out products)."""

from __future__ import annotations

import argparse

from engine.cli.common import progress_bar, settings_from
from engine.errors import EngineError
from engine.eval.detection import detection_ap
from engine.io.catalogue import load_catalogue
from engine.models import get_embedder
from engine.pipeline.engine import Engine
from engine.training.data import annotated_images
from engine.training.garments import GarmentConfig, train_garment_head
from engine.training.triplet import TripletConfig, train_projection
from engine.workspace import catalogue_root


def _products(value: str | None) -> set[str] | None:
    return {p.strip() for p in value.split(",") if p.strip()} if value else None


def _training_catalogue(args: argparse.Namespace):
    settings = settings_from(args)
    catalogue = load_catalogue(args.dataset or catalogue_root(settings))
    exclude = _products(args.exclude_products) or set()
    unknown = exclude - set(catalogue.products)
    if unknown:
        raise EngineError(f"--exclude-products: not in the catalogue: {', '.join(sorted(unknown))}")
    return settings, catalogue, set(catalogue.products) - exclude


def cmd_train_embedding(args: argparse.Namespace) -> int:
    settings, catalogue, products = _training_catalogue(args)
    config = TripletConfig(mode=args.mode, views=args.views, out_dim=args.dim, steps=args.steps, seed=args.seed)
    embedder = get_embedder(settings.models.embedder, device=settings.models.device)
    report = train_projection(embedder, catalogue, args.out, config,
                              products, progress_bar("train-embedding"), home=settings.home)
    print(f"checkpoint {report.checkpoint}")
    print(f"mode {report.mode}: {len(report.products)} products, regions {report.regions}, {report.views} views each; "
          f"loss {report.loss_first:.3f} -> {report.loss_last:.3f}; {report.seconds['total']} s")
    print(f"use it: --head {report.checkpoint}  (or LIVEMATCH_HEAD)")
    return 0


def cmd_train_garments(args: argparse.Namespace) -> int:
    settings, catalogue, products = _training_catalogue(args)
    engine = Engine(settings)
    head, info = train_garment_head(engine, catalogue, args.out, GarmentConfig(seed=args.seed), products,
                                    progress_bar("train-garments"), home=settings.home)
    print(f"checkpoint {info['checkpoint']}")
    print(f"{info['images']} annotated images, {info['anchors']} anchors ({info['positives']} garments); "
          f"loss {info['loss_first']:.3f} -> {info['loss_last']:.3f}; {info['seconds']} s")
    held_out = set(catalogue.products) - products
    frames = annotated_images(catalogue, held_out, shop=False) if held_out else []
    if frames:
        ap = detection_ap(engine, head, frames, settings.search.garment_top)
        print(f"AP@0.5 on {ap['images']} annotated frames of the held-out products ({ap['boxes']} boxes): "
              f"learned {ap['ap50_garment_head']:.3f}; person boxes {ap['ap50_detector_regions']:.3f}; "
              f"all windows {ap['ap50_all_windows']:.3f}")
    else:
        print("no held-out products with annotated frames: pass --exclude-products to measure AP@0.5")
    print(f"use it: --garment-model {info['checkpoint']}  (or LIVEMATCH_GARMENT_MODEL)")
    return 0
