"""Training the learned parts: labelled regions, augmentations, the triplet projection head, the garment head."""
