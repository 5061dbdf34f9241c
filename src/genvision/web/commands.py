"""``genvision web [--port N] [--host H --auth USER:PASS]``: serve the Gradio app (see :mod:`.app`).

Safe by default: it binds the loopback interface; any other host is reachable from other machines
and is refused without ``--auth``. Uploads are capped in bytes (by Gradio, before they are stored)
and in bytes and pixels again by genvision's image loader.
"""

from __future__ import annotations

import importlib.util
import ipaddress

import click

from ..errors import ConfigError
from .app import serve
from .handlers import Limits

LOOPBACK_NAMES = ("localhost",)
MAX_UPLOAD_MB = 200  # genvision.io.MAX_FILE_BYTES: the loader refuses larger files anyway


def is_loopback(host: str) -> bool:
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name: it may resolve to anything
        return False


def parse_auth(text: str | None) -> tuple[str, str] | None:
    if text is None:
        return None
    user, colon, password = text.partition(":")
    if not colon or not user or not password:
        raise click.BadParameter("give USER:PASS, both non-empty", param_hint="--auth")
    return user, password


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Interface to bind. Anything but loopback (e.g. 0.0.0.0) needs --auth.")
@click.option("--port", type=click.IntRange(1, 65535), default=7860, show_default=True)
@click.option("--auth", envvar="GENVISION_WEB_AUTH", metavar="USER:PASS",
              help="Require this login (or set GENVISION_WEB_AUTH, which keeps it out of the process list).")
@click.option("--max-upload-mb", type=click.IntRange(1, MAX_UPLOAD_MB), default=20, show_default=True,
              help="Largest upload in MB.")
@click.option("--max-pixels", type=click.IntRange(1, 89_478_485), default=16_000_000, show_default=True,
              help="Largest decoded upload in pixels (width x height).")
@click.option("--open", "open_browser", is_flag=True, help="Open the page in a browser.")
def web(host, port, auth, max_upload_mb, max_pixels, open_browser):
    """Serve a browser UI: generate, edit, inpaint, denoise, upscale, stylize, translate, classify, search, compress."""
    login = parse_auth(auth)
    if login is None and not is_loopback(host):
        raise click.UsageError(f"--host {host} is reachable from other machines: give --auth USER:PASS "
                               "(or keep the default 127.0.0.1)")
    if importlib.util.find_spec("gradio") is None:
        raise ConfigError("genvision web needs gradio: pip install 'genvision[web]'")
    click.echo(f"genvision web on http://{host}:{port} (Ctrl-C stops it)")
    serve(host=host, port=port, auth=login, limits=Limits(max_upload_mb * 2**20, max_pixels), open_browser=open_browser)
