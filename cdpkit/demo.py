"""A small built-in scenario in the shape of the seed's CDP gateway (Queues only, for now).

HTTP requests enqueue workflow commands on ``cdp-command-queue``; its consumer processes
each command (2 ms of CPU, a transient failure now and then, retried with the seed's
backoff ``min(60, 2**attempts * 5)``), publishes a ``workflow.completed`` event to
``cdp-event-queue``, and poisoned commands end in ``cdp-dlq``, whose consumer records them.
"""

from __future__ import annotations

import random

from .runtime import Runtime


def build_gateway(semantics: str = "local", seed: int = 1, requests: int = 5_000,
                  rate: float = 450.0, failure_rate: float = 0.05) -> Runtime:
    """Build (not run) the demo runtime: ``requests`` commands arriving at ``rate``/s."""
    rt = Runtime(semantics=semantics, seed=seed)
    rt.queue("cdp-command-queue", max_batch_size=10, max_batch_timeout=5, max_retries=3,
             dead_letter_queue="cdp-dlq", max_concurrency=5)
    rt.queue("cdp-event-queue", max_batch_size=100, max_batch_timeout=1)
    rt.queue("cdp-dlq", max_batch_size=10, max_batch_timeout=5)
    rng = random.Random(seed)

    @rt.consumer("cdp-command-queue")
    async def commands(batch, env, ctx):
        for message in batch.messages:
            await ctx.work(0.002)
            if message.body["poison"] or rng.random() < failure_rate:
                message.retry(delay_seconds=min(60, 2 ** message.attempts * 5))
                continue
            await env.CDP_EVENT_QUEUE.send({"type": "workflow.completed",
                                            "workflowId": message.body["workflowId"]})
            message.ack()

    @rt.consumer("cdp-event-queue")
    async def events(batch, env, ctx):
        await ctx.work(0.001 * len(batch.messages))

    @rt.consumer("cdp-dlq")
    async def dead_letters(batch, env, ctx):
        await ctx.work(0.001 * len(batch.messages))  # write to D1 and alert (modelled as CPU)

    async def http_ingress():
        for i in range(requests):
            await rt.sleep(rng.expovariate(rate))
            await rt.env.CDP_COMMAND_QUEUE.send({
                "operation": "execute_workflow", "workflowId": f"workflow_{i}",
                "poison": rng.random() < 0.01,
            })

    rt.spawn(http_ingress(), name="http-ingress")
    return rt
