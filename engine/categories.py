"""Garment categories of the Tianchi live-stream data (淘宝直播商品识别), with English names.

The competition labels every box with one of 23 categories (CATEGORY_EN, in the competition's own order); a few
annotations spell some of them differently (ALIASES: 古装 for 古风, "短袖Top" for 短袖上衣, ...). Any other label
is shown as it is written (``english`` returns it unchanged): the app draws it with a CJK fallback font, and the
command line pads it by display width (``display_width``)."""

import unicodedata

CATEGORY_EN: dict[str, str] = {
    "短袖上衣": "short-sleeve top",
    "长袖上衣": "long-sleeve top",
    "短袖衬衫": "short-sleeve shirt",
    "长袖衬衫": "long-sleeve shirt",
    "背心上衣": "vest top",
    "吊带上衣": "camisole",
    "无袖上衣": "sleeveless top",
    "短外套": "short jacket",
    "短马甲": "short vest",
    "长袖连衣裙": "long-sleeve dress",
    "短袖连衣裙": "short-sleeve dress",
    "无袖连衣裙": "sleeveless dress",
    "长马甲": "long vest",
    "长外套": "long coat",
    "连体衣": "jumpsuit",
    "古风": "traditional Chinese dress",
    "短裙": "short skirt",
    "中等半身裙": "mid-length skirt",
    "长半身裙": "long skirt",
    "短裤": "shorts",
    "中裤": "cropped trousers",
    "长裤": "trousers",
    "背带裤": "overalls",
}

# Other spellings found in the competition's annotations, and the category each stands for.
ALIASES: dict[str, str] = {
    "古装": "古风",
    "短袖Top": "短袖上衣",
    "长袖Top": "长袖上衣",
    "长款外套": "长外套",
    "中等半身裙（及膝）": "中等半身裙",
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


def canonical(label: str) -> str:
    """The category a label stands for (an alias resolved); unknown labels are returned unchanged."""
    text = str(label or "").strip()
    return ALIASES.get(text, text)


def english(label: str) -> str:
    """English name of a category label (or of one of its other spellings); unknown labels are returned unchanged."""
    key = canonical(label)
    return CATEGORY_EN.get(key, key)


def display_width(text: str) -> int:
    """Columns ``text`` takes in a terminal: wide and full-width characters (CJK) take two, combining marks none."""
    width = 0
    for ch in str(text):
        if unicodedata.combining(ch):
            continue
        width += 2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1
    return width


def fit(text: str, width: int) -> str:
    """``text`` cut (with "…") or padded with spaces to exactly ``width`` terminal columns."""
    text = str(text)
    if display_width(text) > width:
        out, used = "", 0
        for ch in text:
            w = display_width(ch)
            if used + w > width - 1:
                break
            out, used = out + ch, used + w
        text = out + "…"
    return text + " " * (width - display_width(text))


def merged(label: str) -> str:
    """The merged class of a category label (MERGE_TABLE); labels outside the table stand for themselves."""
    return MERGE_TABLE.get(label, label)
