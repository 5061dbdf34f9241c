"""``genvision web``: a browser front end over the application pipelines, one tab per task.

:mod:`.handlers` does the work (no gradio), :mod:`.app` lays out the Gradio page, :mod:`.commands`
is the CLI command that serves it (safe by default: loopback only, no auth-less public binding).
"""
