"""The projector writes batch N while it folds N+1, in order, and a rebalance reads the stored
positions only once no batch is being written (fakes for Kafka and PostgreSQL)."""

import asyncio
import threading
import time

import pytest
from aiokafka.structs import TopicPartition

from projections.fold import Changes
from projections.projector import Folded, Projector, SeekToStoredPositions, write_behind
from projections.settings import ProjectorSettings
from projections.writer import ProjectionSwitched, StagedChanges


async def test_a_write_has_begun_when_write_behind_returns_and_writes_stay_in_order():
    log: list[str] = []
    first_may_end = asyncio.Event()

    async def write(name: str, gate: asyncio.Event | None = None) -> None:
        log.append(f"start {name}")
        if gate is not None:
            await gate.wait()
        log.append(f"end {name}")

    first = await write_behind(None, write("1", first_may_end))
    assert log == ["start 1"]  # begun, though the caller has not suspended since

    second = asyncio.create_task(write_behind(first, write("2")))
    await asyncio.sleep(0.01)
    assert log == ["start 1"]  # the second waits for the first
    first_may_end.set()
    await (await second)
    assert log == ["start 1", "end 1", "start 2", "end 2"]


class BlockingWriter:
    def __init__(self) -> None:
        self.may_finish = threading.Event()
        self.started = threading.Event()
        self.loaded_while_writing = False
        self.writing = False

    def write(self, staged: StagedChanges) -> None:
        self.writing = True
        self.started.set()
        self.may_finish.wait(5)
        self.writing = False

    def load_positions(self) -> dict[tuple[str, int], int]:
        self.loaded_while_writing = self.writing
        return {("topic", 0): 7}


class Consumer:
    def __init__(self) -> None:
        self.seeks: list[tuple[TopicPartition, int]] = []
        self.paused: set[TopicPartition] = set()
        self.seeked_while_paused = True

    def seek(self, tp: TopicPartition, offset: int) -> None:
        self.seeks.append((tp, offset))
        self.seeked_while_paused &= tp in self.paused

    def pause(self, *tps: TopicPartition) -> None:
        self.paused.update(tps)

    def resume(self, *tps: TopicPartition) -> None:
        self.paused.difference_update(tps)

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        pass


async def test_an_assignment_reads_positions_only_after_the_batch_being_written():
    writer, consumer = BlockingWriter(), Consumer()
    projector = Projector(ProjectorSettings(), consumer, writer)  # type: ignore[arg-type]
    listener = SeekToStoredPositions(consumer, writer, projector.stored)  # type: ignore[arg-type]
    staged = StagedChanges(job_rows="", item_rows="", job_ids=[], positions=[])
    folded = Folded({}, Changes(), [], staged, asyncio.get_running_loop().create_future())
    projector._storing = folded.stored
    writing = asyncio.create_task(projector.write(folded))
    while not writer.writing:
        await asyncio.sleep(0.001)

    tp = TopicPartition("topic", 0)
    assigning = asyncio.create_task(listener.on_partitions_assigned([tp]))
    await asyncio.sleep(0.05)
    assert consumer.seeks == []  # still waiting for the write
    writer.may_finish.set()
    await asyncio.gather(writing, assigning)
    assert consumer.seeks == [(tp, 7)] and not writer.loaded_while_writing
    assert consumer.seeked_while_paused and not consumer.paused  # nothing fetched meanwhile


async def test_the_projectors_write_is_on_its_thread_when_write_behind_returns():
    writer = BlockingWriter()
    projector = Projector(ProjectorSettings(), Consumer(), writer)  # type: ignore[arg-type]
    staged = StagedChanges(job_rows="", item_rows="", job_ids=[], positions=[])
    folded = Folded({}, Changes(), [], staged, asyncio.get_running_loop().create_future())
    writing = await write_behind(None, projector.write(folded))
    # without giving the event loop a turn, as a fold would not
    assert writer.started.wait(2)
    writer.may_finish.set()
    await writing


class SwappedWriter(BlockingWriter):
    def stage(self, changes: Changes) -> StagedChanges:
        return StagedChanges(job_rows="", item_rows="", job_ids=[], positions=[])

    def write(self, staged: StagedChanges) -> None:
        raise ProjectionSwitched("the projected tables were swapped")


class OneBatch:
    """A batch source with one batch, then nothing (a quiet topic)."""

    def __init__(self) -> None:
        self.calls = 0

    async def next_batch(self, timeout_ms: int) -> dict[TopicPartition, list[object]]:
        self.calls += 1
        if self.calls == 1:
            return {TopicPartition("topic", 0): []}
        await asyncio.sleep(timeout_ms / 1000)
        return {}


async def test_a_failed_write_ends_the_run_though_no_batch_follows():
    """The last batch before a quiet spell fails to write (a replay swapped the tables): the
    projector must restart its session now, not at a next batch that may never come."""
    projector = Projector(ProjectorSettings(), Consumer(), SwappedWriter())  # type: ignore[arg-type]
    projector.batches = OneBatch()  # type: ignore[assignment]
    started = time.monotonic()
    with pytest.raises(ProjectionSwitched):
        await asyncio.wait_for(projector.run(asyncio.Event()), 3)
    assert time.monotonic() - started < 1  # at the next poll, not when stopped
