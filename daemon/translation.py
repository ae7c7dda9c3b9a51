"""Simplified Chinese for the click library's own messages (usage, errors, help).

click marks its texts for gettext but binds `gettext.gettext` into each module at
import time, under the process-wide default domain. intake ships a catalogue for
the domain "click" and points those module names at it, so the command line
speaks Chinese whatever the system locale is.
"""

from __future__ import annotations

import gettext
import importlib
from pathlib import Path

LOCALE_DIR = Path(__file__).resolve().parent / "locale"

#: click modules that call `_` or `ngettext` when they format usage, help or errors.
_CLICK_MODULES = ("click.core", "click.decorators", "click.exceptions", "click.formatting",
                  "click.parser", "click.types", "click.termui")


def install_click_translation() -> None:
    """Make click render its messages from intake's zh_CN catalogue."""
    catalogue = gettext.translation("click", localedir=LOCALE_DIR, languages=["zh_CN"], fallback=True)
    for name in _CLICK_MODULES:
        module = importlib.import_module(name)
        # NOTE: this relies on click's module-level `_`/`ngettext` names, checked with click 8.4.
        if hasattr(module, "_"):
            module._ = catalogue.gettext  # type: ignore[attr-defined]
        if hasattr(module, "ngettext"):
            module.ngettext = catalogue.ngettext  # type: ignore[attr-defined]
