"""Garment categories of the Tianchi live-stream data, with English names."""

CATEGORY_EN: dict[str, str] = {
    "短袖上衣": "short-sleeve top",
    "长袖上衣": "long-sleeve top",
    "无袖上衣": "sleeveless top",
    "短外套": "short jacket",
    "长外套": "long coat",
    "短袖连衣裙": "short-sleeve dress",
    "长袖连衣裙": "long-sleeve dress",
    "无袖连衣裙": "sleeveless dress",
    "短裙": "short skirt",
    "中等半身裙": "mid-length skirt",
    "长半身裙": "long skirt",
    "长裤": "trousers",
    "短裤": "shorts",
    "背带裤": "overalls",
    "古风": "traditional dress",
    "古装": "costume",
    "旗袍": "qipao",
    "马甲": "vest",
    "披肩": "shawl",
    "帽子": "hat",
    "鞋": "shoes",
    "包": "bag",
    "毛衣": "sweater",
}

# Confusable classes that a region classifier should not be asked to separate.
MERGE_TABLE: dict[str, str] = {
    "短裙": "skirt",
    "中等半身裙": "skirt",
    "长半身裙": "skirt",
    "短袖上衣": "top",
    "长袖上衣": "top",
    "无袖上衣": "top",
    "短外套": "outerwear",
    "长外套": "outerwear",
    "短袖连衣裙": "dress",
    "长袖连衣裙": "dress",
    "无袖连衣裙": "dress",
    "长裤": "trousers",
    "短裤": "shorts",
    "背带裤": "overalls",
}


def english(label: str) -> str:
    """English name of a category label; unknown labels are returned unchanged."""
    return CATEGORY_EN.get(label, label)


def merged(label: str) -> str:
    """The merged class of a category label (MERGE_TABLE); labels outside the table stand for themselves."""
    return MERGE_TABLE.get(label, label)
