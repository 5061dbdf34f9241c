"""`genvision demo`: the main job on the embedded default writes a complete report."""

from __future__ import annotations

import json

from PIL import Image

from genvision.cli import main


def test_demo_writes_report_with_samples_interpolation_and_scores(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("GENVISION_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--minutes", "0.05"]) == 0
    assert f"report: {out / 'index.html'}" in capsys.readouterr().out
    page = (out / "index.html").read_text()
    for expected in ('src="samples.png"', 'src="interpolation.png"', "<svg", "loss_d", "fid", "NOT comparable"):
        assert expected in page, expected
    assert Image.open(out / "samples.png").size == (10 * 30 + 2, 10 * 30 + 2)
    assert Image.open(out / "interpolation.gif").n_frames == 10
    scores = json.loads((out / "evaluation.json").read_text())["metrics"]
    assert scores["num_samples"] == 1000 and scores["fid"] > 0
    rows = [json.loads(line) for line in (out / "gan-run" / "metrics.jsonl").read_text().splitlines()]
    assert rows and rows[-1]["step"] > 0
