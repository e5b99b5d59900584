import uuid
from uuid import uuid4

from events import ids
from tests import factories as f


def test_item_ids_derive_from_job_and_index_only():
    job = uuid4()
    assert f.item_submitted(job, 7).event_id == f.item_submitted(job, 7, when=99).event_id
    assert ids.item_submitted_id(job, 7) != ids.item_submitted_id(job, 8)
    assert ids.item_submitted_id(job, 7) != ids.item_submitted_id(uuid4(), 7)


def test_every_outcome_of_an_item_shares_one_id():
    job = uuid4()
    outcome_ids = {
        f.succeeded(job, 3).event_id,
        f.failed(job, 3).event_id,
        f.cancelled(job, 3).event_id,
    }
    assert len(outcome_ids) == 1
    assert outcome_ids != {f.item_submitted(job, 3).event_id}


def test_job_submitted_id_is_deterministic():
    job = uuid4()
    assert f.job_submitted(job, 1).event_id == f.job_submitted(job, 2).event_id


def test_fast_uuid5_functions_agree_with_the_standard_library():
    namespace = uuid4()
    for job in (uuid4(), uuid4()):
        for index in [*range(200), 123_456_789]:  # every hex digit at the variant's place
            expected = uuid.uuid5(namespace, f"{job}/{index}")
            assert ids.uuid5(namespace, f"{job}/{index}") == expected
            assert ids.ItemUuid5(namespace).text(str(job), str(index)) == str(expected)
            texts = ids.ItemUuid5(namespace).ascii_texts(str(job), [str(index)] * 2)
            assert texts == [str(expected).encode()] * 2
