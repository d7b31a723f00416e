"""Prompt and preference sets from JSONL and from `datasets` folders."""

from __future__ import annotations

import json

import pytest

from rmteach.core.blocks import DataConfig
from rmteach.core.data import hash_prompts, load_preferences, load_prompts
from rmteach.core.errors import UserError


def _jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def test_jsonl_ids_default_to_row_index_and_limit(tmp_path):
    p = _jsonl(tmp_path / "p.jsonl", [{"prompt": "a"}, {"prompt": "b", "id": 7}, {"prompt": "c"}])
    prompts = load_prompts(DataConfig(path=p))
    assert [(x.id, x.text) for x in prompts] == [("0", "a"), ("7", "b"), ("2", "c")]
    assert len(load_prompts(DataConfig(path=p, limit=2))) == 2


def test_dataset_folder_with_splits(tmp_path):
    import datasets

    dd = datasets.DatasetDict(
        {"train": datasets.Dataset.from_dict({"prompt": ["x", "y"]}), "test": datasets.Dataset.from_dict({"prompt": ["z"]})}
    )
    dd.save_to_disk(str(tmp_path / "ds"))
    with pytest.raises(UserError, match="has splits \\['test', 'train'\\]: set 'split'"):
        load_prompts(DataConfig(path=str(tmp_path / "ds")))
    assert [p.text for p in load_prompts(DataConfig(path=str(tmp_path / "ds"), split="test"))] == ["z"]
    with pytest.raises(UserError, match="has no split 'dev'"):
        load_prompts(DataConfig(path=str(tmp_path / "ds"), split="dev"))
    prefs = datasets.Dataset.from_dict({"prompt": ["p"], "chosen": ["c"], "rejected": ["r"]})
    prefs.save_to_disk(str(tmp_path / "prefs"))
    (pair,) = load_preferences(DataConfig(path=str(tmp_path / "prefs")))
    assert (pair.prompt, pair.chosen, pair.rejected) == ("p", "c", "r")


@pytest.mark.parametrize(
    "rows, message",
    [
        ([{"prompt": "a", "id": 1}, {"prompt": "b", "id": 1}], "id '1' appears more than once"),
        ([{"prompt": 3}], "row 0: 'prompt' must be a string"),
    ],
)
def test_bad_rows(tmp_path, rows, message):
    with pytest.raises(UserError, match=message):
        load_prompts(DataConfig(path=_jsonl(tmp_path / "p.jsonl", rows)))


def test_bad_json_line_names_the_line(tmp_path):
    (tmp_path / "p.jsonl").write_text('{"prompt": "a"}\n{oops\n')
    with pytest.raises(UserError, match="p.jsonl:2: not valid JSON"):
        load_prompts(DataConfig(path=str(tmp_path / "p.jsonl")))


def test_hash_changes_with_text(tmp_path):
    a = load_prompts(DataConfig(path=_jsonl(tmp_path / "a.jsonl", [{"prompt": "a"}])))
    b = load_prompts(DataConfig(path=_jsonl(tmp_path / "b.jsonl", [{"prompt": "b"}])))
    assert hash_prompts(a) != hash_prompts(b) and hash_prompts(a) == hash_prompts(list(a))


def test_pairs_without_a_preference_are_dropped_with_a_warning(tmp_path, capsys):
    p = tmp_path / "q.jsonl"
    rows = [{"id": "a", "prompt": "p", "chosen": "x", "rejected": "x"}, {"id": "b", "prompt": "p", "chosen": "x",
                                                                          "rejected": "y"}]
    p.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert [pair.id for pair in load_preferences(DataConfig(path=str(p)))] == ["b"]
    err = capsys.readouterr().err
    assert "dropped 1 of 2 pairs" in err and "first: id 'a'" in err


def test_a_byte_order_mark_is_read_as_utf8(tmp_path):
    p = tmp_path / "p.jsonl"
    p.write_bytes(b'\xef\xbb\xbf{"prompt": "caf\xc3\xa9"}\n')
    assert [x.text for x in load_prompts(DataConfig(path=str(p)))] == ["caf\u00e9"]
