"""--threads: applied before the model loads, recorded in run.json; by default the cores this process may use,
shared among the ranks of this machine."""

import json
import os

import pytest
import torch
from conftest import labelled_records, write_jsonl

from datawhisperer import threads
from datawhisperer.cli import main
from datawhisperer.errors import UserError


def test_select_applies_and_records_its_threads(tmp_path):
    pool = write_jsonl(tmp_path / "pool.jsonl", labelled_records(12))
    before = torch.get_num_threads()
    try:
        for requested, expected in (("1", 1), (None, threads.usable_cores())):
            out = tmp_path / f"out-{requested}"
            flags = ["--threads", requested] if requested else []
            assert main(["select", pool, "--backend", "fake", "--task", "classification", "--n-demos", "2",
                         "--n-queries", "2", "--out", str(out), "--quiet", *flags]) == 0
            assert json.loads((out / "run.json").read_text())["threads"] == expected == torch.get_num_threads()
    finally:
        torch.set_num_threads(before)


def test_the_default_is_the_cores_this_process_may_use_divided_among_its_machine_s_ranks(monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3, 4, 5})
    assert threads.usable_cores() in (6, *range(1, 6))  # a cgroup quota may cap it lower
    monkeypatch.setattr(threads, "usable_cores", lambda: 6)
    assert threads.default_threads(1) == 6 and threads.default_threads(4) == 1 and threads.default_threads(2) == 3
    with pytest.raises(UserError, match="threads must be at least 1"):
        threads.apply_threads(0)


def test_the_python_api_leaves_pytorch_s_threads_as_it_found_them(tmp_path):
    import datawhisperer
    from datawhisperer.backends.fake import FakeBackend

    before = torch.get_num_threads()
    wanted = 1 if before > 1 else 2
    selection = datawhisperer.select(labelled_records(12), task="classification", n_demos=2, n_queries=2,
                                     quiet=True, threads=wanted, out=str(tmp_path / "run"),
                                     backend_instance=FakeBackend())
    assert json.loads((tmp_path / "run" / "run.json").read_text())["threads"] == wanted
    assert torch.get_num_threads() == before and len(selection.subset(0.25)) == 3
