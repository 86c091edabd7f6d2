"""How a run's listed images are cut into shards (one Spark job each, committed and recorded on its own), and
how big a shard and its tasks are.

Pure: no I/O, no Spark. A shard is a run of consecutive positions in the sorted listing, less the images
the output already holds, so that a source can select it with one range of paths.
"""

from __future__ import annotations

from collections.abc import Container, Sequence
from dataclasses import dataclass, field

# a default shard is about this much of the cluster's work, measured on the shards before it: a crash or a
# Ctrl-C costs at most that, on a small run too, and a shard's fixed cost (its job, commit and record) is
# spread over it
SHARD_SECONDS = 90.0
# a task is about this much of one core's work, so the progress bar (which moves as tasks end) moves every
# few seconds; images_per_task caps it
TASK_SECONDS = 5.0
# before any rate is known, the first shard is a few small tasks per core: its commit, and the progress
# bar's first move, come within seconds of the network being loaded
FIRST_TASK_IMAGES = 16
FIRST_SHARD_TASKS_PER_CORE = 2


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


@dataclass
class Sizing:
    """How many images the next shard and each of its tasks get.

    With the shard_size setting, every shard has that size and tasks hold up to images_per_task. Without
    it, both follow the rate one task slot (a core) encoded at in the shards so far, the network's loading
    left out: a shard of about SHARD_SECONDS of the whole cluster's work (at least two tasks per core), tasks
    of about TASK_SECONDS of one core's work. The first shard, before any rate is known, is
    FIRST_SHARD_TASKS_PER_CORE tasks of FIRST_TASK_IMAGES per core.
    """

    setting: int | None
    parallelism: int
    images_per_task: int
    slot_rate: float | None = None  # images per second of one task slot, from the shards so far
    images: int = 0
    busy_seconds: float = 0.0

    def observe(self, images: int, busy_seconds: float) -> None:
        """A shard's tasks spent `busy_seconds` (summed over its tasks) on its `images`."""
        self.images += images
        self.busy_seconds += busy_seconds
        if self.images and self.busy_seconds > 0:
            self.slot_rate = self.images / self.busy_seconds

    def task_images(self) -> int:
        if self.setting is not None:
            return self.images_per_task
        if self.slot_rate is None:
            return min(self.images_per_task, FIRST_TASK_IMAGES)
        return max(1, min(self.images_per_task, int(self.slot_rate * TASK_SECONDS)))

    def shard_images(self) -> int:
        if self.setting is not None:
            return self.setting
        if self.slot_rate is None:
            return FIRST_SHARD_TASKS_PER_CORE * self.parallelism * self.task_images()
        cluster_rate = self.slot_rate * self.parallelism
        return max(int(cluster_rate * SHARD_SECONDS), 2 * self.parallelism * self.task_images())


def task_count(images: int, parallelism: int, images_per_task: int) -> int:
    """How many Spark tasks a run of `images` gets: every core at least two, none above `images_per_task`
    (the images_per_task setting says why)."""
    return max(1, min(images, max(2 * parallelism, -(-images // images_per_task))))


def whole_task_images(shard_images: int, parallelism: int, images_per_task: int) -> int:
    """The images of one task when every task of a run is cut up front (df mode plans its input once) and
    shards of `shard_images` are to be whole tasks: about as task_count would cut one shard, made a divisor
    of the shard where one is close (at least half of it), so that every shard has exactly that size."""
    wanted = -(-shard_images // task_count(shard_images, parallelism, images_per_task))
    divisor = max(d for d in range(1, wanted + 1) if shard_images % d == 0)
    return divisor if 2 * divisor >= wanted else wanted


class Planner:
    """Cuts `listing` (sorted) into shards one at a time, leaving out what is in `done`: each shard's size
    is chosen when it is cut (Sizing), after the shards before it ran.

    An image already done that lies between two images of a shard goes into the shard's `skip`; one
    before a shard's first image is simply not part of any shard.
    """

    def __init__(self, listing: Sequence[str], done: Container[str], first_number: int = 1):
        self.listing = listing
        self.done = done
        self.number = first_number
        self.position = 0
        self.remaining = sum(1 for image in listing if image not in done)  # images not yet in a shard

    def next(self, size: int) -> Shard | None:
        """The next shard of at most `size` images, or None when every image has one."""
        start, count, skip, last = None, 0, [], 0
        position = self.position
        while position < len(self.listing) and count < size:
            if self.listing[position] in self.done:
                if start is not None:
                    skip.append(position)
            else:
                if start is None:
                    start = position
                count, last = count + 1, position
            position += 1
        self.position = position
        if start is None:
            return None
        # a shard ends at its last image: images done after it are left to the next shard's start
        shard = Shard(self.number, start, last + 1, [p for p in skip if p < last])
        self.number += 1
        self.remaining -= count
        return shard


def plan(listing: Sequence[str], done: Container[str], size: int, first_number: int = 1) -> list[Shard]:
    """Every shard at once, each of at most `size` images (see Planner)."""
    planner = Planner(listing, done, first_number)
    shards = []
    while (shard := planner.next(size)) is not None:
        shards.append(shard)
    return shards
