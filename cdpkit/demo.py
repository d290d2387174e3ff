"""The built-in CDP gateway: the seed's model (all three patterns) and a handler-code runtime.

:func:`gateway` is the capacity model (``cdpkit/data/cdp-gateway.yaml``, also at
``examples/cdp-gateway.yaml``) and :data:`GATEWAY_MIX` its traffic mix.

>>> gateway()
<Pipeline 'cdp-gateway': 8 actors, 5 consumers, 5 queues, 2 sources, 3 stores>

:func:`build_gateway` is the same shape written as handler code against the emulator API:
HTTP requests enqueue workflow commands on ``cdp-command-queue``; its consumer processes
each command (2 ms of CPU, a transient failure now and then, retried with the seed's
backoff ``min(60, 2**attempts * 5)``), publishes a ``workflow.completed`` event to
``cdp-event-queue``, and poisoned commands end in ``cdp-dlq``, whose consumer records them.
"""

from __future__ import annotations

import random
from importlib import resources

from .model import Pipeline, Poisson
from .runtime import Runtime

#: Message types arriving at the gateway's HTTP endpoints, with their shares of traffic.
GATEWAY_MIX = {"execute_workflow": 0.5, "web_scraping": 0.2, "email_validation": 0.2, "crm_sync": 0.1}


def gateway() -> Pipeline:
    """The seed's CDP gateway as a Pipeline (the embedded ``cdp-gateway.yaml``)."""
    return Pipeline.from_yaml(resources.files("cdpkit.data").joinpath("cdp-gateway.yaml").read_text())


def gateway_workload(rate: float = 200.0) -> Poisson:
    """Poisson traffic at ``rate`` requests/s with the gateway's type mix."""
    return Poisson(rate=rate, types=dict(GATEWAY_MIX))


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
