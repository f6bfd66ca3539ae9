"""Micro-batching: concurrent requests share one model call. Requests queue while the model works on the
previous batch; the worker then takes everything waiting (up to max_items) at once. No timer: a lone
request never waits for company, and under load batches grow by themselves."""

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

RunBatch = Callable[[list[Any]], list[Any]]  # one result per job, in order


@dataclass
class _Job:
    payload: Any
    size: int
    future: asyncio.Future


class MicroBatcher:
    """`run_batch(payloads)` runs on one worker thread (the model call releases the GIL in numpy/torch,
    the event loop keeps accepting requests meanwhile)."""

    def __init__(self, run_batch: RunBatch, max_items: int, on_batch: Callable[[int, int], None] | None = None):
        self.run_batch, self.max_items, self.on_batch = run_batch, max_items, on_batch
        self._queue: asyncio.Queue[_Job] | None = None
        self._task: asyncio.Task | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="autotag-serve-model")

    async def start(self) -> None:
        self._queue = asyncio.Queue()
        self._task = asyncio.create_task(self._work(), name="autotag-serve-batcher")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        self._executor.shutdown(wait=True)

    async def submit(self, payload: Any, size: int) -> Any:
        """The result for `payload` (a request of `size` items, never split across batches)."""
        future = asyncio.get_running_loop().create_future()
        await self._queue.put(_Job(payload, size, future))
        return await future

    async def _work(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            jobs = [await self._queue.get()]
            items = jobs[0].size
            while not self._queue.empty() and items < self.max_items:
                job = self._queue.get_nowait()
                jobs.append(job)
                items += job.size
            jobs = [j for j in jobs if not j.future.done()]  # a client that hung up
            if not jobs:
                continue
            try:
                results = await loop.run_in_executor(self._executor, self.run_batch, [j.payload for j in jobs])
            except Exception as exc:  # noqa: BLE001 - handed to every waiting request
                for job in jobs:
                    if not job.future.done():
                        job.future.set_exception(exc)
                continue
            if self.on_batch is not None:
                self.on_batch(len(jobs), items)
            for job, result in zip(jobs, results, strict=True):
                if not job.future.done():
                    job.future.set_result(result)
