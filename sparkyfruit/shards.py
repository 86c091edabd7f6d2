"""How a run's listed images are cut into shards: one Spark job each, committed and recorded on its own.

Pure: no I/O, no Spark. A shard is a run of consecutive positions in the sorted listing, less the images
the output already holds, so that a source can select it with one range of paths.
"""

from __future__ import annotations

from collections.abc import Container, Sequence
from dataclasses import dataclass, field

DEFAULT_SHARD_SIZE = 10_000
# df mode plans each shard's job against Spark's index of every listed file (a filter on the file path),
# a cost that grows with the listing: by default a large df input is cut into at most this many shards
MOST_SHARDS_OF_A_LISTING = 10


@dataclass
class Shard:
    """Positions [start, stop) of the sorted listing, without those in `skip` (images already done)."""

    number: int  # 1-based, the name of its record in the output (_shards/000001.json)
    start: int
    stop: int
    skip: list[int] = field(default_factory=list)

    @property
    def size(self) -> int:
        return self.stop - self.start - len(self.skip)

    def positions(self) -> list[int]:
        skipped = set(self.skip)
        return [position for position in range(self.start, self.stop) if position not in skipped]


def shard_size(setting: int | None, parallelism: int, images_per_task: int, indexed: int = 0) -> int:
    """The shard size of a run: the setting, or by default DEFAULT_SHARD_SIZE images, raised to two full
    tasks per core on a cluster that has more cores than that feeds, and, when every shard is planned
    against an index of `indexed` files (df mode), to at most MOST_SHARDS_OF_A_LISTING shards."""
    if setting is not None:
        return setting
    return max(DEFAULT_SHARD_SIZE, 2 * parallelism * images_per_task, -(-indexed // MOST_SHARDS_OF_A_LISTING))


def plan(listing: Sequence[str], done: Container[str], size: int, first_number: int = 1) -> list[Shard]:
    """Shards of at most `size` images over `listing` (sorted), leaving out what is in `done`.

    An image already done that lies between two images of a shard goes into the shard's `skip`; one
    before a shard's first image is simply not part of any shard.
    """
    shards: list[Shard] = []
    start, count, skip, last = None, 0, [], 0
    for position, image in enumerate(listing):
        if image in done:
            if start is not None:
                skip.append(position)
            continue
        if start is None:
            start = position
        count, last = count + 1, position
        if count == size:
            shards.append(Shard(first_number + len(shards), start, position + 1, skip))
            start, count, skip = None, 0, []
    if start is not None:  # the last shard ends at its last image, not at the end of the listing
        shards.append(Shard(first_number + len(shards), start, last + 1, [p for p in skip if p < last]))
    return shards
