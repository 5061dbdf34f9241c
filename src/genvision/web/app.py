"""The Gradio page of ``genvision web``: one tab per task, each a thin wiring of :mod:`.handlers`.

gradio is imported inside the functions that need it (it is heavy and optional: ``genvision[web]``).
Every tab shows a one-line status: the result's summary, or ``error: ...`` for anything that went
wrong (never a traceback; the server's log keeps those of unexpected errors). The only files the app
serves are its uploads and results, both inside one temporary folder (Gradio's cache is pointed there).
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from ..errors import GenvisionError, reason
from . import handlers
from .handlers import Limits, Result, Workspace

log = logging.getLogger(__name__)

TABS = ("generate", "edit", "inpaint", "denoise", "upscale", "stylize", "translate", "classify", "search", "compress")
IMAGE_TYPES = ["image"]
INTRO = ("Every model comes from genvision's zoo (`genvision zoo list`); every result downloads with its JSON "
         "sidecar. Uploads only: no paths or URLs are read.")


def one_line_error(exc: BaseException) -> str:
    """``error: <reason>`` on one line: genvision's own message, or the kind of an unexpected failure."""
    if isinstance(exc, GenvisionError):
        return f"error: {reason(exc)}"
    log.exception("unexpected error in genvision web")
    return f"error: unexpected {type(exc).__name__}: {reason(exc)}"


def outcome(run: Callable[[], Result], empty: int = 2) -> tuple:
    """(image, files, message, *extras) of a handler call, or ``empty`` Nones and the error line."""
    try:
        result = run()
    except Exception as exc:  # noqa: BLE001 - the UI's contract: one line for whatever failed
        return (*([None] * empty), one_line_error(exc))
    return result.image and str(result.image), [str(p) for p in result.files], result.message


def _reporter(progress) -> Callable[[float, str], None]:
    return lambda fraction, text: progress(fraction, desc=text)


def _outputs(tab: str):
    """The result image, the downloads and the status line every tab ends with."""
    import gradio as gr

    image = gr.Image(label="Result", type="filepath", interactive=False, elem_id=f"{tab}-result", height=360)
    files = gr.File(label="Download (image + JSON sidecar)", file_count="multiple", interactive=False,
                    elem_id=f"{tab}-files")
    status = gr.Textbox(label="Status", interactive=False, max_lines=1, elem_id=f"{tab}-status")
    return image, files, status


def _upload(tab: str, label: str = "Image"):
    import gradio as gr

    return gr.File(label=label, file_types=IMAGE_TYPES, type="filepath", elem_id=f"{tab}-upload", height=120)


def _model_choice(tab: str, extra: tuple[str, ...] = (), default: str | None = None):
    import gradio as gr

    choices = handlers.zoo_choices(tab) + list(extra)
    return gr.Dropdown(choices, value=default if default in choices else choices[0], label="Model",
                       elem_id=f"{tab}-model")


def build_app(workspace: Workspace):
    """The gr.Blocks of every tab, writing its results into ``workspace``."""
    import gradio as gr

    track = gr.Progress(track_tqdm=True)

    with gr.Blocks(title="genvision", analytics_enabled=False) as app:
        gr.Markdown(f"# genvision\n{INTRO}")

        with gr.Tab("Generate", id="generate"):
            model = _model_choice("generate")
            with gr.Row():
                count = gr.Slider(1, handlers.MAX_GENERATE, value=16, step=1, label="Images")
                seed = gr.Number(0, precision=0, label="Seed", minimum=0)
                label = gr.Number(3, precision=0, label="Class (conditional models)", minimum=0, maximum=9)
            run = gr.Button("Generate", variant="primary", elem_id="generate-run")
            image, files, status = _outputs("generate")

            def generate(model, count, seed, label, progress=track):
                return outcome(lambda: handlers.generate(model, count, seed, label, workspace, _reporter(progress)))

            run.click(generate, [model, count, seed, label], [image, files, status])

        with gr.Tab("Edit", id="edit"):
            upload = _upload("edit")
            ops = gr.Textbox(handlers.DEFAULT_EDIT_OPS, lines=4, label="Ops, one per line (genvision edit --list-ops)")
            run = gr.Button("Edit", variant="primary", elem_id="edit-run")
            image, files, status = _outputs("edit")

            def edit(upload, ops, progress=track):
                return outcome(lambda: handlers.edit(upload, ops, workspace, _reporter(progress)))

            run.click(edit, [upload, ops], [image, files, status])

        with gr.Tab("Inpaint", id="inpaint"):
            upload = _upload("inpaint")
            editor = gr.ImageEditor(label="Paint over what to fill", type="numpy", sources=(), transforms=(),
                                    layers=False, brush=gr.Brush(colors=["#ff00ff"], color_mode="fixed",
                                                                 default_size=12),
                                    elem_id="inpaint-editor", height=360)
            with gr.Row():
                model = _model_choice("inpaint", (handlers.CLASSICAL_INPAINT,), default="zoo:lama-photos")
                seed = gr.Number(0, precision=0, label="Seed (DiT, CVAE)", minimum=0)
            run = gr.Button("Fill", variant="primary", elem_id="inpaint-run")
            image, files, status = _outputs("inpaint")

            def show_in_editor(upload):
                """The upload as genvision decoded it becomes the editor's background (no mask yet)."""
                try:
                    picture = workspace.load(upload)
                except Exception as exc:  # noqa: BLE001
                    return None, one_line_error(exc)
                path = workspace.path("inpaint-source", ".png")
                picture.save(path)
                return {"background": str(path), "layers": [], "composite": str(path)}, \
                    f"{picture.width}x{picture.height}: paint the hole, then Fill"

            def inpaint(upload, painted, model, seed, progress=track):
                def run():
                    size = workspace.load(upload).size
                    mask = handlers.mask_from_layers((painted or {}).get("layers"), size)
                    return handlers.inpaint(upload, mask, model, seed, workspace, _reporter(progress))
                return outcome(run)

            upload.upload(show_in_editor, upload, [editor, status])
            run.click(inpaint, [upload, editor, model, seed], [image, files, status])

        # one upload, one zoo model, one button: the restoration tabs
        for tab, title, handler, default in (("denoise", "Denoise", handlers.denoise, "zoo:dncnn"),
                                             ("upscale", "Upscale", handlers.upscale, "zoo:edsr-x3")):
            with gr.Tab(title, id=tab):
                upload = _upload(tab)
                model = _model_choice(tab, default=default)  # the best-scoring entry, whatever sorts first
                run = gr.Button(title, variant="primary", elem_id=f"{tab}-run")
                image, files, status = _outputs(tab)

                def restore(upload, model, progress=track, handler=handler):
                    return outcome(lambda: handler(upload, model, workspace, _reporter(progress)))

                run.click(restore, [upload, model], [image, files, status])

        with gr.Tab("Stylize", id="stylize"):
            with gr.Row():
                upload = _upload("stylize", "Content image")
                style = gr.File(label="Style image (AdaIN, optimize)", file_types=IMAGE_TYPES, type="filepath",
                                elem_id="stylize-style", height=120)
            with gr.Row():
                model = _model_choice("stylize", (handlers.OPTIMIZE,))
                paintings = handlers.painting_choices()
                painting = gr.Dropdown(paintings, value=paintings[0] if paintings else None,
                                       label="Painting (multi-style fast nets)", elem_id="stylize-painting")
                steps = gr.Slider(1, handlers.MAX_STYLE_STEPS, value=10, step=1, label="Steps (optimize)")
            run = gr.Button("Stylize", variant="primary", elem_id="stylize-run")
            image, files, status = _outputs("stylize")

            def stylize(upload, style, model, painting, steps, progress=track):
                return outcome(lambda: handlers.stylize(upload, model, style, steps, workspace, _reporter(progress),
                                                        painting))

            run.click(stylize, [upload, style, model, painting, steps], [image, files, status])

        with gr.Tab("Translate", id="translate"):
            upload = _upload("translate")
            with gr.Row():
                model = _model_choice("translate")
                direction = gr.Radio(["a2b", "b2a"], value="a2b", label="Direction")
            run = gr.Button("Translate", variant="primary", elem_id="translate-run")
            image, files, status = _outputs("translate")

            def translate(upload, model, direction, progress=track):
                return outcome(lambda: handlers.translate(upload, model, direction, workspace, _reporter(progress)))

            run.click(translate, [upload, model, direction], [image, files, status])

        with gr.Tab("Classify + explain", id="classify"):
            gr.Markdown(f"ImageNet classes from pretrained {handlers.EXPLAIN_BACKBONE} with the Grad-CAM of its "
                        "prediction, or digits from the zoo's classifiers (Grad-CAM, or attention rollout for the "
                        "ViT).")
            upload = _upload("classify")
            model = _model_choice("classify", (handlers.EXPLAIN_BACKBONE,), default=handlers.EXPLAIN_BACKBONE)
            run = gr.Button("Classify", variant="primary", elem_id="classify-run")
            labels = gr.Label(num_top_classes=5, label="Top 5", elem_id="classify-labels")
            image, files, status = _outputs("classify")

            def classify(upload, model, progress=track):
                found = {}

                def run():
                    result = handlers.explain(upload, workspace, _reporter(progress), model=model)
                    found.update(result.extra["labels"])
                    return result
                return (*outcome(run), found or None)

            run.click(classify, [upload, model], [image, files, status, labels])

        with gr.Tab("Search", id="search"):
            gr.Markdown("Upload a few images, build an index of them (zoo:simclr-photos embeddings), then search "
                        "it with a query image.")
            collection = gr.File(label="Images to index", file_count="multiple", file_types=IMAGE_TYPES,
                                 type="filepath", elem_id="search-collection", height=120)
            model = _model_choice("search")
            build = gr.Button("Build index", elem_id="search-build")
            index_path = gr.State(None)
            query = _upload("search", "Query image")
            run = gr.Button("Search", variant="primary", elem_id="search-run")
            image, files, status = _outputs("search")

            def build_index(collection, model, progress=track):
                try:
                    result = handlers.build_index(collection, model, workspace, _reporter(progress))
                except Exception as exc:  # noqa: BLE001
                    return None, one_line_error(exc)
                return result.extra["index"], result.message

            def search(index, query, progress=track):
                return outcome(lambda: handlers.search(index, query, workspace, _reporter(progress)))

            build.click(build_index, [collection, model], [index_path, status])
            run.click(search, [index_path, query], [image, files, status])

        with gr.Tab("Compress", id="compress"):
            upload = _upload("compress")
            model = _model_choice("compress")
            run = gr.Button("Compress", variant="primary", elem_id="compress-run")
            with gr.Row():
                image = gr.Image(label="Learned codec", type="filepath", interactive=False,
                                 elem_id="compress-result", height=300)
                jpeg = gr.Image(label="JPEG at the same rate", type="filepath", interactive=False,
                                elem_id="compress-jpeg", height=300)
            files = gr.File(label="Download (.gvc, decoded PNG, JPEG, JSON sidecars)", file_count="multiple",
                            interactive=False, elem_id="compress-files")
            status = gr.Textbox(label="Status", interactive=False, max_lines=1, elem_id="compress-status")

            def compress(upload, model, progress=track):
                found = {}

                def run():
                    result = handlers.compress(upload, model, workspace, _reporter(progress))
                    found["jpeg"] = str(result.extra["jpeg"])
                    return result
                return (*outcome(run), found.get("jpeg"))

            run.click(compress, [upload, model], [image, files, status, jpeg])
    return app


def serve(*, host: str, port: int, auth: tuple[str, str] | None, limits: Limits, open_browser: bool = False) -> None:
    """Build the app in a fresh temporary folder and serve it until interrupted; the folder goes with it."""
    root = Path(tempfile.mkdtemp(prefix="genvision-web-"))
    # Gradio keeps uploads and the copies of results it serves in its cache: inside our folder, so the
    # app serves nothing from anywhere else. Set before gradio reads it; no telemetry on a private app.
    os.environ["GRADIO_TEMP_DIR"] = str(root / "cache")
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    import gradio as gr

    workspace = Workspace(root / "results", limits)
    app = build_app(workspace)
    try:
        app.queue(default_concurrency_limit=1).launch(
            server_name=host, server_port=port, auth=auth, max_file_size=limits.max_bytes, allowed_paths=[],
            inbrowser=open_browser, show_error=False, ssr_mode=False, theme=gr.themes.Default())
    finally:
        shutil.rmtree(root, ignore_errors=True)


__all__ = ["TABS", "build_app", "one_line_error", "outcome", "serve"]
