"""Fault injection: a folder upscale SIGKILLed at random moments (several times during a PNG write)
leaves every output complete or absent, and re-running with --overwrite completes the job.

The many-kill version is benchmarks/reliability_fuzz_files.py (the lead runs it).
"""

from __future__ import annotations

from kill_folder_job import kill_campaign


def test_killed_folder_job_leaves_complete_or_absent_outputs(tmp_path):
    stats = kill_campaign(tmp_path, kills=3, seed=0)  # each run starts Python and torch: ~3 s apiece
    assert stats["partial_files"] == 0, stats["partial_examples"]
    assert stats["kills"] >= 2  # the job was still running when (almost) every kill came
    assert stats["kills_while_writing"] >= 1  # at least one kill landed while a file was being written
    assert stats["rerun_exit"] == 0 and stats["rerun_complete"], stats
