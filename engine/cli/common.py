"""What every command shares: the settings' options (made from engine/config.py's fields), the settings the
arguments give, progress bars."""

from __future__ import annotations

import argparse
import sys
from enum import Enum
from typing import Any, Callable

from tqdm import tqdm

from engine.config import Settings, progress_forced

APP_ONLY = ("access",)  # settings groups without options: what the app's visitors may do (the command line ignores it)
SETTINGS_EPILOG = ("Every settings option can also come from the environment as LIVEMATCH_<NAME> (--index-dir: "
                   "LIVEMATCH_INDEX_DIR); an option given here overrides it.")


def progress_hidden() -> bool:
    """Progress bars stay off when stderr is not a terminal, unless ``LIVEMATCH_PROGRESS=1`` forces them."""
    return not sys.stderr.isatty() and not progress_forced()


def progress_bar(desc: str) -> Callable[[str, float], None]:
    """A tqdm bar on stderr driven by (stage, fraction) callbacks."""
    bar = tqdm(total=100, desc=desc, bar_format="{desc:<28} {percentage:3.0f}%|{bar:30}| {elapsed}",
               file=sys.stderr, disable=progress_hidden())
    state = {"stage": ""}

    def update(stage: str, fraction: float) -> None:
        if stage != state["stage"]:
            state["stage"] = stage
            bar.set_description_str(f"{desc}: {stage}"[:28])
        bar.n = int(round(100 * min(max(fraction, 0.0), 1.0)))
        bar.refresh()
        if stage == "done":
            bar.close()

    return update


def settings_from(args: argparse.Namespace) -> Settings:
    """Defaults, then the environment, then the options given."""
    names = Settings.field_names()
    chosen = {k: v for k, v in vars(args).items() if k in names and v is not None}
    return Settings.from_env(**chosen)


def add_settings_options(p: argparse.ArgumentParser, flags: dict[str, tuple[str, ...]] | None = None,
                         skip: tuple[str, ...] = ()) -> None:
    """One option per settings field (but the app's access group), in a section per group, all from the field:
    its option (``--<name with dashes>``, or the flags it declares), type, choices (an Enum's values), help and
    default. ``flags`` renames a field's option for this command ({"frames": ("--sample",)}: correct's --frames is
    its own); ``skip`` leaves out fields whose option the command keeps for itself (train's --seed)."""
    defaults = Settings().flat()
    sections: dict[str, Any] = {}
    for name, (group, f, kind) in Settings.settings_fields().items():
        if group in APP_ONLY or name in skip:
            continue
        if group not in sections:
            sections[group] = p.add_argument_group(f"{group} settings")
        names = (flags or {}).get(name) or f.metadata["flags"] or ("--" + name.replace("_", "-"),)
        action = sections[group].add_argument(*names, **option_spec(name, kind, f.metadata, defaults[name]))
        setattr(action, SETTING_MARK, True)
    p.epilog = p.epilog or SETTINGS_EPILOG
    p.formatter_class = SettingsUsage


SETTING_MARK = "livematch_setting"  # set on the options add_settings_options made


class SettingsUsage(argparse.HelpFormatter):
    """A usage line that names the command's own options and one ``[--<setting> VALUE]`` for the settings' (listed
    below it, a section per group), rather than all 35 of them."""

    def add_usage(self, usage, actions, groups, prefix=None):  # type: ignore[no-untyped-def]
        own = [a for a in actions if not getattr(a, SETTING_MARK, False)]
        if len(own) < len(actions):
            own.append(argparse.Action(["--<setting>"], dest="setting", metavar="VALUE"))
        super().add_usage(usage, own, groups, prefix)


def option_spec(name: str, kind: type, metadata: Any, default: Any) -> dict[str, Any]:
    """add_argument's keywords for a settings field: its dest, type or choices, and help with the default. The
    option's own default is None, so that a field not given keeps the environment's value."""
    if default == "":
        shown = f"default: {metadata['unset']}"
    elif kind is bool:
        shown = f"default: {'on' if default else 'off'}"
    else:
        shown = f"default {default:g}" if kind is float else f"default {default}"
    spec: dict[str, Any] = {"dest": name, "default": None, "help": f"{metadata['help']} ({shown})".replace("%", "%%")}
    if issubclass(kind, Enum):
        spec.update(choices=[m.value for m in kind], type=str.lower)  # as the environment: --runtime OpenVINO
    elif kind is bool:
        spec["action"] = argparse.BooleanOptionalAction
    elif kind in (int, float):
        spec["type"] = kind
    elif kind is not str:  # a checked text (engine.choices.Device): its own message, not "invalid Device value"
        spec["type"] = _checked(kind)
    return spec


def _checked(kind: type) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        try:
            return kind(text)
        except ValueError as e:
            raise argparse.ArgumentTypeError(str(e)) from None

    parse.__name__ = kind.__name__
    return parse
