"""Run a conformance scenario (see DSL.md) in cdpkit, producing the same delivery records."""

from __future__ import annotations

import cdpkit as cdp
from cdpkit.runtime.settings import QUEUE_SETTINGS


def js_number(value):
    """A delay as the worker's ``Number(value)`` makes it: '1.9' -> 1.9, 'NaN' -> nan, 2 -> 2."""
    if not isinstance(value, str):
        return value
    return int(value) if value.lstrip("-").isdigit() else float(value)


def action_for(body: dict, attempts: int) -> str:
    plan = body.get("do") or []
    if not plan:
        return "none"
    return plan[min(attempts, len(plan)) - 1]


def run_scenario(scenario: dict, semantics: str = "local", seed: int = 0,
                 sent: list[float] | None = None) -> tuple[list[dict], cdp.Runtime]:
    """Run one scenario for its duration; return (deliveries, runtime). ``sent``: the times
    the real runtime's sends began (default: each send's ``at``)."""
    rt = cdp.Runtime(semantics=semantics, seed=seed)
    deliveries: list[dict] = []
    counters: dict[str, int] = {}
    queues = scenario["queues"]
    for short in queues:
        rt.queue(short, **{k: v for k, v in (queues[short] or {}).items() if k in QUEUE_SETTINGS})
    steps_for = scenario.get("batches", {})

    def make_handler(short: str):
        async def handle(batch, env, ctx):
            n = counters.get(short, 0)
            counters[short] = n + 1
            deliveries.append({"queue": short, "t": rt.now, "batch": n,
                               "messages": [{"k": m.body["k"], "attempts": m.attempts}
                                            for m in batch.messages]})
            plan = steps_for.get(short, {})
            for step in plan.get(str(n), plan.get("default", ["messages"])):
                name, _, arg = step.partition(":")
                if name == "messages":
                    for m in batch.messages:
                        for call in action_for(m.body, m.attempts).split(","):
                            await run_call(call, m, env, ctx)
                elif name == "ackAll":
                    batch.ack_all()
                elif name == "retryAll":
                    batch.retry_all(delay_seconds=js_number(arg) if arg else None)
                elif name == "throw":
                    raise RuntimeError("scenario throws")
                elif name == "sleep":
                    await ctx.sleep(float(arg))
                else:
                    raise ValueError(f"unknown batch step {step!r}")
        return handle

    async def run_call(call: str, m, env, ctx) -> None:
        name, _, arg = call.strip().partition(":")
        if name == "none":
            return
        if name == "ack":
            m.ack()
        elif name == "retry":
            m.retry(delay_seconds=js_number(arg) if arg else None)
        elif name == "send":
            queue, _, delay = arg.partition(":")
            await getattr(env, queue.replace("-", "_").upper()).send(
                {"k": f"{m.body['k']}>{queue}", "do": []}, delay_seconds=js_number(delay) if delay else None)
        elif name == "sleep":
            await ctx.sleep(float(arg))
        elif name == "throw":
            raise RuntimeError("message action throws")
        else:
            raise ValueError(f"unknown message action {call!r}")

    for short, settings in queues.items():
        if settings is not None:
            rt.consumer(short)(make_handler(short))

    def do_send(send: dict) -> None:
        producer = getattr(rt.env, send["queue"].replace("-", "_").upper())
        messages = send["messages"]
        if send.get("mode", "send") == "send":
            for item in messages:
                body = {k: v for k, v in item.items() if k != "delay"}
                delay = item.get("delay", send.get("delay"))
                producer.send(body, delay_seconds=js_number(delay))
        else:
            producer.send_batch([{"body": {k: v for k, v in item.items() if k != "delay"},
                                  **({"delay_seconds": js_number(item["delay"])} if "delay" in item else {})}
                                 for item in messages], delay_seconds=js_number(send.get("delay")))

    outages = [{"kind": "outage", "node": f"{short}.consumer", "mode": "throw", "start": start, "end": end}
               for short, (start, end) in scenario.get("outages", {}).items()]
    if outages:                       # the fault timeline, as a user applies it to handler code
        rt.apply_faults(cdp.Faults(outages))
    for i, send in enumerate(scenario["sends"]):
        rt.call_at(send["at"] if sent is None else sent[i], do_send, send)
    rt.run(until=scenario["duration"])
    deliveries.sort(key=lambda d: (d["queue"], d["batch"]))
    return deliveries, rt
