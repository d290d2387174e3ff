# ---
# jupyter:
#   jupytext:
#     formats: ipynb,src//py:percent
#     notebook_metadata_filter: -jupytext.text_representation.jupytext_version
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 08 · Production limits: autoscaling, hot objects, queue throughput, plans
#
# `wrangler dev` has no limits; Cloudflare's network has several, and they change a design:
#
# * a queue's consumers are **autoscaled**, starting at one, not all `max_concurrency` at once;
# * a Durable Object takes about **1,000 requests/s**; past that requests queue, and queued too
#   long they fail with "Durable Object is overloaded";
# * a queue accepts **5,000 messages/s**; past that `send` fails with "Too Many Requests";
# * the **Free plan** bills nothing but has daily allowances.
#
# `cdp.simulate` runs with `semantics="production"` by default, so all of these apply. Each
# rule cites the reference in the README's "Local vs production semantics" table.

# %%
import pandas as pd

import cdpkit as cdp
from cdpkit import viz
from cdpkit.errors import LimitError

pd.set_option("display.width", 120)
pd.set_option("display.precision", 3)

# %% [markdown]
# ## 1 · A spike with autoscaling vs every slot at once
#
# The queue of notebook 04: a consumer handles a batch of 10 in 50 ms + 5 ms per message
# (about 100 messages/s each), `max_concurrency = 20`; traffic is 100/s with a 15 s burst
# at 1,500/s. Under `production` the autoscaler adds one consumer after each finished batch
# as the backlog asks; `cdp.PRODUCTION_ALL_SLOTS` runs all 20 from the first second
# (cdpkit's earlier production profile, and what a sizing by `max_concurrency` assumes).

# %%
spike = cdp.Piecewise(schedule=[(0, 100), (20, 1500), (35, 100)])
p = cdp.Pipeline("spike")
p.add_source("http", queue="orders")
p.add_queue("orders", max_batch_size=10, max_batch_timeout=1, max_concurrency=20)
p.add_consumer("orders", service={"base": 0.05, "per_message": 0.005})

spikes = {name: cdp.simulate(p, spike, duration=120, seed=2, semantics=semantics)
          for name, semantics in [("autoscaling", "production"),
                                  ("all slots", cdp.PRODUCTION_ALL_SLOTS)]}

# %%
# NBVAL_CHECK_OUTPUT
def spike_row(res):
    tl = res.timeline.query("node == 'orders'")
    s = res.summary()
    return {"max_backlog": int(s["max_backlog"]), "p99_latency_s": round(float(s["p99_latency"]), 2),
            "consumers_at_spike_end": int(tl[tl["time"] <= 35]["consumers"].iloc[-1]),
            "max_consumers": int(tl["consumers"].max())}

pd.DataFrame.from_dict({name: spike_row(r) for name, r in spikes.items()}, orient="index")

# %%
import matplotlib.pyplot as plt

fig, (top, bottom) = plt.subplots(2, 1, figsize=(10, 5), sharex=True)
for name, r in spikes.items():
    tl = r.timeline.query("node == 'orders'")
    top.plot(tl["time"], tl["backlog"], label=name)
    bottom.step(tl["time"], tl["consumers"], where="post", label=name)
top.set(ylabel="backlog (messages)", title="A 15 s spike at 1,500 messages/s, max_concurrency = 20")
bottom.set(xlabel="virtual time (s)", ylabel="consumers", xlim=(0, 120))
top.axvspan(20, 35, color="grey", alpha=0.15)
bottom.axvspan(20, 35, color="grey", alpha=0.15)
top.legend();

# %% [markdown]
# With every slot running, 20 consumers (about 2,000 messages/s) absorb the spike. The
# autoscaler is still climbing when the spike ends, so a backlog of thousands builds and
# the p99 grows from a fraction of a second to seconds: **size for a spike with
# autoscaling in mind** (or smooth the producer), not from `max_concurrency` alone.
# The rule's numbers are cdpkit's assumption (`cdp.Autoscaling`; Cloudflare documents the
# inputs, not the thresholds): make a variant with `dataclasses.replace(cdp.PRODUCTION,
# autoscaling=cdp.Autoscaling(start=5))` to see how sensitive a design is to it.
#
# ## 2 · A hot Durable Object at 1,500 requests/s
#
# One object per counter id: 1,500 requests/s for 6 s to `get_by_name("counter")`, each
# retried up to 3 times (1 s apart) when the object is overloaded, as a careful Worker
# would. Past 1,000 requests/s requests queue at the object; queued for more than a second,
# they fail with `LimitError: Durable Object is overloaded. Requests queued for too long.`

# %%
class Counter(cdp.Actor):
    async def hit(self):
        return 1


def hot_counter(rate=1_500, seconds=6, keys=1, retries=3):
    rt = cdp.Runtime(semantics="production", seed=1)
    rt.actor("COUNTER", Counter)
    outcome = {"ok": 0, "ok after a retry": 0, "failed": 0, "overload errors": 0}

    async def request(i):
        stub = rt.env.COUNTER.get_by_name(f"counter:{i % keys}")   # shard by request
        for attempt in range(retries + 1):
            try:
                await stub.hit()
                outcome["ok" if attempt == 0 else "ok after a retry"] += 1
                return
            except LimitError:
                outcome["overload errors"] += 1
                await rt.sleep(1.0)
        outcome["failed"] += 1

    for i in range(int(rate * seconds)):
        rt.call_at(i / rate, lambda i=i: rt.spawn(request(i)))
    rt.run()
    calls = rt.actor_calls
    return {**outcome, "requests to objects": len(calls),
            "max wait at object_s": round(float(calls["wait"].max()), 2)}

# %%
# NBVAL_CHECK_OUTPUT
pd.DataFrame.from_dict({f"{keys} key{'s' * (keys > 1)}": hot_counter(keys=keys) for keys in (1, 2, 4)},
                       orient="index")

# %% [markdown]
# On one key a third of the traffic is over the limit. Requests queue at the object; once
# the queue is a second long, the excess (1,003 requests here, one in nine) fails with the
# overload error. Their retries a second later get through (a couple needed more than one), so nothing is
# lost here, but each of those requests took over a second more, and the object served
# 10,003 requests for 9,000. Over 2 keys each object sees 750 requests/s: nothing queues. The fix for a hot object is more
# *keys* (shard the id, e.g. `f"{customer}:{n % shards}"`), not more instances of
# something else.
#
# ## 3 · A queue at 7,000 messages/s
#
# A queue accepts 5,000 messages/s. In `simulate`, the excess sends end with outcome
# `rejected` (the producer got "Too Many Requests"), and `res.warnings` says how many queues
# the traffic needs.

# %%
def ingest(shards):
    q = cdp.Pipeline(f"ingest-{shards}")
    for k in range(shards):
        q.add_source(f"http-{k}", queue=f"events-{k}", share=1 / shards)
        q.add_queue(f"events-{k}", max_batch_size=100, max_batch_timeout=1, max_concurrency=50)
        q.add_consumer(f"events-{k}", service={"base": 0.01})
    return q

one = cdp.simulate(ingest(1), cdp.Constant(rate=7_000), duration=3, seed=1)
one

# %%
# NBVAL_CHECK_OUTPUT
one.summary()[["messages", "acked", "rejected", "in_flight"]]

# %%
# NBVAL_CHECK_OUTPUT
one.warnings[["what", "where", "value", "limit", "advice"]]

# %% [markdown]
# 2,000 of every 7,000 messages a second are refused. Sharded over two queues (the
# producer picks one, e.g. by a hash of the customer id), each takes 3,500 messages/s:

# %%
# NBVAL_CHECK_OUTPUT
two = cdp.simulate(ingest(2), cdp.Constant(rate=7_000), duration=3, seed=1)
counts = two.messages.groupby(["queue", "outcome"], observed=True).size().unstack(fill_value=0)
counts

# %%
# NBVAL_CHECK_OUTPUT
two.warnings[["what", "where", "value", "limit"]]

# %% [markdown]
# (At 3,500 of 5,000 messages/s, 70 %, no warning: `res.warnings` starts at 80 % of a limit.)
#
# ## 4 · The same pipeline on the Free and Paid plans
#
# `res.cost(plan=...)` prices one run on either plan: the Free plan bills nothing but has
# daily allowances (Queues: 10,000 operations a day), and `over_allowance` marks every item
# the run's rate would exceed; the Paid plan has a $5 monthly minimum and monthly
# allowances. Here the seed's gateway at 5 requests/s:

# %%
from cdpkit.demo import gateway, gateway_workload

small = cdp.simulate(gateway(), gateway_workload(rate=5), duration=120, seed=1)
free, paid = small.cost(plan="free"), small.cost(plan="paid")

# %%
# NBVAL_CHECK_OUTPUT
items = ["queues_operations", "workers_requests", "do_requests", "do_duration_gb_s", "kv_writes",
         "workers_paid_minimum"]
short = {"monthly_quantity": "per month", "free_allowance": "allowance", "allowance_per": "per",
         "over_allowance": "over", "monthly_cost": "$/month"}

def plan_view(cost, cols):
    return cost.set_index("item").loc[items, cols].rename(columns=short)

pd.concat({"usage": plan_view(free, ["monthly_quantity"]),
           "free plan": plan_view(free, ["free_allowance", "allowance_per", "over_allowance"]),
           "paid plan": plan_view(paid, ["free_allowance", "allowance_per", "over_allowance",
                                         "monthly_cost"])}, axis=1)

# %% [markdown]
# On the Free plan this gateway is over its Queues, Durable Object and KV allowances within
# the day (the Free plan would refuse the rest), so it needs the Paid plan. There the bill
# is the monthly sum:

# %%
# NBVAL_CHECK_OUTPUT
{"free: monthly_cost": float(free["monthly_cost"].sum()),
 "paid: monthly_cost": round(float(paid["monthly_cost"].sum()), 2)}

# %% [markdown]
# `cdp.PRODUCTION_FREE` runs a pipeline under the Free plan's own rules (retention fixed at
# 24 h). The dashboard (`viz.dashboard(res)`) and the explorer show every warning above;
# `viz.draw_pipeline` marks the node that reaches a limit:

# %%
viz.draw_pipeline(ingest(1), one);
