"""What a visitor of the app may reach: which catalogue folders it may open, and whether it may edit.

The app is safe by default and explicit to share (docs/security.md):

* ``confine(folder, roots)``: a folder typed in the app is resolved (``~``, ``..`` and symbolic links followed)
  and must lie under one of the configured roots, else it is refused with a one-line reason.
* ``editing_allowed(mode, bind_address)``: editing (add, remove, rebuild, correct, train) is "on", "off", or
  "auto": on only while the server listens on the local machine alone.

Pure functions over strings and paths; the app (ui/) reads Streamlit's options and the settings, and calls them.
"""

from __future__ import annotations

import ipaddress
import os
import re
from pathlib import Path
from typing import Iterable

from engine.choices import Editing
from engine.errors import CatalogueError, EngineError

LOCAL_BINDS = frozenset({"127.0.0.1", "localhost", "::1", "[::1]", "ip6-localhost"})
EDITING_MODES = tuple(m.value for m in Editing)  # the editing setting's values: auto, on, off


def served_locally(bind_address: str | None) -> bool:
    """True when a server bound to this address is reachable from this machine only. An empty address is
    Streamlit's default: every interface."""
    address = (bind_address or "").strip().lower()
    if address in LOCAL_BINDS:
        return True
    try:  # an address literal: 127.x.y.z or ::1 (a name such as 127.example.com is not local)
        return ipaddress.ip_address(address.strip("[]")).is_loopback
    except ValueError:
        return False


def editing_allowed(mode: str, bind_address: str | None) -> bool:
    """Whether the app may change the catalogue, its index and its examples: the ``editing`` setting, where "auto"
    means on while the server listens on localhost alone and off when it is served beyond it."""
    m = (mode or "auto").strip().lower()
    if m not in EDITING_MODES:
        raise EngineError(f"LIVEMATCH_EDITING={mode!r}: choose one of {', '.join(EDITING_MODES)}")
    return served_locally(bind_address) if m == "auto" else m == "on"


def split_roots(text: str) -> list[str]:
    """The folders of a roots setting: separated by os.pathsep or commas, blanks dropped."""
    return [p.strip() for p in re.split(rf"[{re.escape(os.pathsep)},]", text or "") if p.strip()]


def resolved(folder: str | Path) -> Path:
    """A folder as the file system sees it: ``~`` expanded, ``..`` and symbolic links followed."""
    try:
        return Path(folder).expanduser().resolve()
    except (OSError, RuntimeError, ValueError) as e:  # a link loop, a NUL byte
        raise CatalogueError(f"{folder}: not a usable folder ({type(e).__name__})") from None


def within(folder: str | Path, roots: Iterable[str | Path]) -> bool:
    """Whether ``folder`` lies under one of ``roots`` (``confine`` without the error): what a visitor may see."""
    try:
        confine(folder, roots)
    except CatalogueError:
        return False
    return True


def confine(folder: str | Path, roots: Iterable[str | Path]) -> Path:
    """The resolved folder when it lies under (or is) one of ``roots`` (resolved too); CatalogueError otherwise.
    A non-UTF-8 or NUL-bearing name is refused like any other outside folder."""
    text = str(folder)
    if "\x00" in text:
        raise CatalogueError("the catalogue folder's name holds a NUL character")
    target = resolved(text)
    allowed = []
    for root in roots:
        try:
            allowed.append(resolved(root))
        except CatalogueError:
            continue
    for root in allowed:
        if target == root or root in target.parents:
            return target
    where = ", ".join(str(r) for r in allowed) or "none"
    raise CatalogueError(f"{folder}: outside the folders this app may open ({where}). The operator lists more "
                         "with LIVEMATCH_CATALOGUE_ROOTS (docs/security.md).")
