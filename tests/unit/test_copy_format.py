from datetime import UTC, datetime
from uuid import UUID

from projections.copy_format import copy_text


def test_nulls_escapes_and_json():
    row = (
        UUID(int=1),
        None,
        True,
        3,
        1.5,
        datetime(2026, 1, 2, tzinfo=UTC),
        "tab\there\nnew\\line",
        {"k": "v\tw"},
    )
    line = copy_text([row])
    fields = line.rstrip("\n").split("\t")
    assert fields[0] == "00000000-0000-0000-0000-000000000001"
    assert fields[1] == "\\N"
    assert fields[2:5] == ["t", "3", "1.5"]
    assert fields[5] == "2026-01-02T00:00:00+00:00"
    assert fields[6] == "tab\\there\\nnew\\\\line"
    assert fields[7] == '{"k":"v\\\\tw"}'
    assert line.count("\n") == 1
