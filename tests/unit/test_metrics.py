"""metrics.jsonl after a restart: the lost tail moves to metrics.jsonl.lost, running time sums the sessions."""

from __future__ import annotations

import json

from pirlctl import metrics as M


def _write(path, records) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))


def _train(it: int, t: float) -> dict:
    return {"kind": "train", "time": t, M.TRAIN_ITERATION: it, M.TRAIN_ENV_STEPS: 10 * it}


def _episode(version: int, t: float) -> dict:
    return {"kind": "episode", "time": t, M.ACTOR_POLICY_VERSION: version, M.ACTOR_SUCCESS: 1.0}


def test_the_lost_tail_moves_to_a_lost_file_and_leaves_a_marker_with_its_time(tmp_path):
    path = tmp_path / "metrics.jsonl"
    records = [
        {"kind": M.KIND_SESSION, "time": 0.0},
        _episode(0, 1.0),
        _train(1, 2.0),
        _episode(1, 3.0),
        _train(2, 4.0),
        _episode(1, 4.5),  # a segment of version 1 arriving after iteration 2: collected before the checkpoint
        _episode(2, 5.0),
        _train(3, 6.0),
        _episode(3, 7.0),
    ]
    _write(path, records)
    with open(path, "a") as f:
        f.write('{"kind": "train", "ti')  # torn last line of a killed learner
    assert M.drop_lost_tail(path, 1) == 4

    kept = M.read_metrics(path)
    assert kept[:5] == [records[0], records[1], records[2], records[3], records[5]]
    assert kept[5] == {"kind": M.KIND_LOST, "time": 7.0, M.LOST_RECORDS: 4, M.LOST_ITERATIONS: [2, 3]}
    assert len(kept) == 6
    assert M.read_metrics(tmp_path / "metrics.jsonl.lost") == [records[4], records[6], records[7], records[8]]
    assert M.drop_lost_tail(path, 1) == 0 and M.read_metrics(path) == kept  # nothing more to drop: untouched
    assert M.drop_lost_tail(path, 0) == 3  # a start from scratch: every train record, episodes of versions > 0
    assert [r["kind"] for r in M.read_metrics(path)] == [M.KIND_SESSION, "episode", M.KIND_LOST, M.KIND_LOST]
    assert len(M.read_metrics(tmp_path / "metrics.jsonl.lost")) == 7  # appended, not overwritten


def test_running_time_is_the_sum_of_the_sessions_not_first_to_last(tmp_path):
    records = [
        {"kind": M.KIND_SESSION, "time": 100.0},
        _train(1, 110.0),
        _train(2, 130.0),  # session 1: 30 s
        {"kind": M.KIND_SESSION, "time": 1000.0},  # 15 minutes later, resumed
        _train(3, 1005.0),
        {"kind": M.KIND_LOST, "time": 1012.0},  # session 2: 12 s
    ]
    assert M.running_seconds(records) == 42.0
    # a file from before session records: a restart shows as an iteration that does not increase
    old = [_train(1, 0.0), _train(2, 10.0), _train(1, 500.0), _train(2, 505.0), _train(3, 520.0)]
    assert M.running_seconds(old) == 30.0
    assert M.running_seconds([]) == 0.0
