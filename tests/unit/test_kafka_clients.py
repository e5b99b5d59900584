"""What our producers publish is compressed as ``KAFKA_COMPRESSION`` says: the record batch a
producer builds (what the workers' and the API's batch senders submit) carries the codec,
and reads back."""

import pytest
from aiokafka.record.default_records import DefaultRecordBatch

from streaming.clients import make_producer
from streaming.settings import KafkaSettings

CODES = {"none": 0, "gzip": 1, "snappy": 2, "lz4": 3, "zstd": 4}


def _built_batch(settings: KafkaSettings) -> DefaultRecordBatch:
    producer = make_producer(settings)
    builder = producer.create_batch()
    for i in range(100):
        builder.append(timestamp=None, key=b"k", value=b'{"item_index": %d, "input": {}}' % i)
    builder.close()
    return DefaultRecordBatch(bytes(builder._build()))


@pytest.mark.parametrize("codec", sorted(CODES))
async def test_a_producers_batches_carry_the_configured_codec(codec):
    batch = _built_batch(KafkaSettings(kafka_compression=codec))
    assert batch.compression_type == CODES[codec]
    values = [record.value for record in batch]
    assert values[7] == b'{"item_index": 7, "input": {}}' and len(values) == 100


async def test_lz4_by_default():
    assert _built_batch(KafkaSettings()).compression_type == CODES["lz4"]


def test_an_unknown_codec_is_refused_at_start_up():
    with pytest.raises(ValueError, match="kafka_compression"):
        KafkaSettings(kafka_compression="brotli")  # type: ignore[arg-type]
