"""``gahp-shell``: an admin shell for a GAHP server (non-interactive core: lines + client)."""
from gahp.shell.lines import LineMaker, Request, UsageError, parse_ad, render_ad

__all__ = ["LineMaker", "Request", "UsageError", "parse_ad", "render_ad"]
