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
# # 04 · Throughput, concurrency and draining a spike
#
# In production Queues autoscales a queue's consumers: one at first, then, after each batch,
# one more (or one fewer) as the backlog and its growth ask, never more than
# `max_concurrency` (cdpkit's rule for this is an assumption: Cloudflare documents the inputs,
# not the numbers; see the README). When traffic spikes above what the consumers can do, a
# backlog builds; how fast it drains after the spike depends on concurrency. Here a consumer handles a batch of 10 in 50 ms + 5 ms per
# message (about 100 messages/s per invocation); traffic is 100/s with a 15 s burst at 1,500/s.

# %%
import numpy as np
import pandas as pd

import cdpkit as cdp
from cdpkit import viz

pd.set_option("display.width", 120)
pd.set_option("display.precision", 3)

# %%
spike = cdp.Piecewise(schedule=[(0, 100), (20, 1500), (35, 100)])
p = cdp.Pipeline("spike")
p.add_source("http", queue="orders")
p.add_queue("orders", max_batch_size=10, max_batch_timeout=1, max_concurrency=1)
p.add_consumer("orders", service={"base": 0.05, "per_message": 0.005})

runs = {c: cdp.simulate(p.set("orders.max_concurrency", c), spike, duration=120, seed=2)
        for c in (2, 5, 10, 20)}


# %%
# NBVAL_CHECK_OUTPUT
def drained_at(r):
    # the first sample after the spike's end (t = 35 s) with an empty backlog
    t = r.timeline[(r.timeline["node"] == "orders") & (r.timeline["time"] >= 35)]
    empty = t[t["backlog"] == 0]["time"]
    return empty.iloc[0] if len(empty) else np.nan

pd.DataFrame.from_dict({c: {**r.summary()[["messages", "max_backlog", "wait_mean", "p99_latency"]],
                            "consumers": r.timeline.query("node == 'orders'")["consumers"].max(),
                            "drained_at": drained_at(r)}
                        for c, r in runs.items()}, orient="index").rename_axis("max_concurrency").round(2)

# %%
import matplotlib.pyplot as plt

fig, ax = plt.subplots(figsize=(10, 3.5))
for c, r in runs.items():
    t = r.timeline[r.timeline["node"] == "orders"]
    ax.plot(t["time"], t["backlog"], label=f"max_concurrency={c}")
ax.set(xlabel="virtual time (s)", ylabel="backlog (messages)", title="Backlog through a 15 s spike")
ax.legend();

# %% [markdown]
# Capacity is roughly `consumers × 100` messages/s, and the autoscaler adds one consumer per
# finished batch. With at most 2 consumers the spike's 22,500 messages are still draining
# when traffic stops at 120 s (`simulate` runs on until the queues are empty); with 5 the
# backlog lasts about a minute after the spike, with 10 about 20 s. With 20 allowed, the
# autoscaler has reached only 15 by the end of the 15 s spike, so a backlog of about 7,500
# still builds:
# autoscaling makes a spike slower than running every slot from the start would
# (`cdp.PRODUCTION_ALL_SLOTS`, compared in notebook 08). The timeline also shows how many
# consumers run at once:

# %%
viz.plot_backlog(runs[5]);

# %% [markdown]
# ## Turn the knobs
#
# The explorer re-simulates on every change (a copy of the model with the new settings; the
# model itself is not touched). Move *concurrency* and *burst* and watch the backlog. From
# code, `explorer.set(...)` moves the controls and returns the new result.

# %%
explorer = viz.explore(p, spike, duration=120, seed=2)
explorer

# %%
# NBVAL_CHECK_OUTPUT
r = explorer.set(concurrency=10)
{"overrides": explorer.overrides, "max_backlog": int(r.summary()["max_backlog"])}

# %% [markdown]
# ## Utilisation and the M/M/c check
#
# Batch size 1 and exponential service turn a queue into M/M/c: c servers all the time, so
# the check runs without autoscaling (`semantics=cdp.PRODUCTION_ALL_SLOTS`: every
# `max_concurrency` slot from the start). cdpkit's `tests/test_theory.py` checks these closed
# forms on every test run; here is one of them.

# %%
# NBVAL_CHECK_OUTPUT
import math

lam, mu, c = 8.0, 1.0, 10
mmc = cdp.Pipeline("mmc")
mmc.add_source("http", queue="jobs")
mmc.add_queue("jobs", max_batch_size=1, max_batch_timeout=0, max_concurrency=c)
mmc.add_consumer("jobs", service={"base": {"exp": 1 / mu}})
wq = cdp.simulate(mmc, cdp.Poisson(rate=lam), duration=5_000, seed=1,
                  semantics=cdp.PRODUCTION_ALL_SLOTS).summary()["wait_mean"]
rho, a = lam / (c * mu), lam / mu
p0 = 1 / (sum(a**k / math.factorial(k) for k in range(c)) + a**c / (math.factorial(c) * (1 - rho)))
theory = a**c * rho / (math.factorial(c) * (1 - rho) ** 2) * p0 / lam
{"simulated Wq": round(float(wq), 3), "Erlang C Wq": round(theory, 4)}
