"""torchrun: two CPU processes with gloo on loopback train one model, rank 0 alone writing."""

import json
import os
import subprocess
import sys
from pathlib import Path

import torch


def test_two_processes_train_data_parallel(tmp_path, corpus_file):
    run = tmp_path / "run"
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_port=29517",
               "-m", "genseq", "train", "lm", str(corpus_file), "-o", str(run), "--steps", "8",
               "--valid-every", "4", "--hidden", "16", "--embed", "8", "--layers", "1", "--vocab-size", "150",
               "--batch-size", "8", "--seq-len", "16", "--quiet", "--device", "cpu"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=tmp_path,
                            env={**os.environ, "OMP_NUM_THREADS": "1",
                                 "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"})
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stderr.count("held-out:") == 1  # rank 0 reports; rank 1 stays quiet
    entries = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    valid_steps = [e["step"] for e in entries if e["split"] == "valid"]
    assert valid_steps == [4, 8]  # one writer: no step logged twice
    record = torch.load(run / "model.pt", weights_only=True)
    assert record["step"] == 8 and record["corpus"]["train_items"] > 0


def test_a_batch_that_does_not_split_is_refused(tmp_path, corpus_file):
    # a slow monitor lets both ranks report before torchrun stops the one still running
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_port=29518",
               "--monitor-interval=10",
               "-m", "genseq", "train", "lm", str(corpus_file), "-o", str(tmp_path / "r"), "--steps", "2",
               "--batch-size", "3", "--quiet", "--device", "cpu", "--hidden", "8", "--vocab-size", "100"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert result.returncode != 0  # each rank says why in one line; torchrun then reports the failed ranks
    assert result.stderr.count("Error: --batch-size 3 does not split over 2 processes") == 2
    assert not (tmp_path / "r").exists()
