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
# # 09 · Incident rehearsal: a 15-minute CRM outage
#
# A queue exists for the bad day. Here the seed's CDP gateway loses its CRM API for 15 minutes:
# every `crm_sync` task's write to the CRM fails. What grows, what is dead-lettered or lost,
# when has it drained, and what did the retries cost? We compare the seed's retry policy
# (fixed 30 s, 3 retries) with exponential backoff capped at 5 minutes and 10 retries, each
# with and without a dead letter queue, through the *same* fault timeline.

# %%
import pandas as pd

import cdpkit as cdp
from cdpkit import viz

pd.set_option("display.width", 120)
pd.set_option("display.precision", 3)

# %%
from cdpkit.demo import gateway, gateway_workload

p = gateway()                                   # cdpkit/data/cdp-gateway.yaml
p.add_store("CRM_API", kind="sink", latency={"exp": 0.05})
p = p.set("GHLContactActor.writes", ["CRM_API"])        # crm_sync tasks write to the CRM

outage = cdp.Faults().add("errors", "CRM_API", p=1.0, start=300, length=900)
outage

# %% [markdown]
# A fault names a node and its windows. Kinds: `outage` (a consumer throws, or its delivery
# is paused), `pause`, `purge`, `dlq_down`, `errors`, `slowdown`, `rate_limit`, `eviction`;
# the same list can sit in a model file's `faults:` section or go to
# `cdpkit simulate MODEL --faults FAULTS.yaml`. Bad specs fail before anything runs:

# %%
# NBVAL_CHECK_OUTPUT
try:
    cdp.simulate(p, gateway_workload(rate=20), duration=1800,
                 faults=[{"kind": "errors", "node": "CRM", "start": 300, "length": 900}])
except cdp.ConfigError as exc:
    print(str(exc)[:160])

# %%
policies = {"fixed 30 s x3": ({"policy": "fixed", "base": 30}, 3),
            "exp 10 s..5 min x10": ({"policy": "exponential", "base": 5, "cap": 300}, 10)}
runs = {}
for dlq in ("cdp-dlq", None):
    for name, (retry, retries) in policies.items():
        q = (p.set("cdp-task-queue.dead_letter_queue", dlq)
              .set("cdp-task-queue.consumer.retry", retry)
              .set("cdp-task-queue.max_retries", retries))
        runs[(dlq or "no DLQ", name)] = cdp.simulate(q, gateway_workload(rate=20), duration=1800,
                                                      seed=1, faults=outage)

# %% [markdown]
# One row per fault window (`res.incidents()`), for each configuration:

# %%
# NBVAL_CHECK_OUTPUT
rows = {}
for key, res in runs.items():
    inc = res.incidents().iloc[0]
    task = res.messages[res.messages["queue"] == "cdp-task-queue"]
    crm = task[task["type"] == "crm_sync"]
    rows[key] = {"crm_sync": len(crm), "acked": int((crm["outcome"] == "acked").sum()),
                 "dead_lettered": int(inc["dead_lettered"]), "lost": int(inc["dropped"] + inc["expired"]),
                 "peak_backlog": int(inc["peak_backlog"]), "time_to_drain_s": round(inc["time_to_drain"], 1),
                 "retried": int(inc["retried"]), "operations": int(inc["operations"]),
                 "incident_usd": round(float(inc["cost_usd"]), 6),
                 "run_cost_usd": round(float(res.cost()["run_cost"].sum()), 4)}
pd.DataFrame.from_dict(rows, orient="index").astype(object).T   # a column per configuration

# %% [markdown]
# * **Fixed 30 s, 3 retries** gives up after about 2 minutes: every `crm_sync` task that
#   arrives during the outage is dead-lettered (to be replayed by hand from D1), or, without
#   a DLQ, **lost for good**. The backlog stays small and drains at once.
# * **Exponential backoff to 5 minutes, 10 retries** rides out the 15 minutes: every task
#   is eventually written, at the price of a bigger backlog (messages waiting on their retry
#   delay), a drain of a few minutes after the CRM is back, and about twice the retries
#   (each a queue read and a Worker invocation).
# * **In dollars** (`incident_usd`, the row's `cost_usd`): what the window *added* at list
#   prices, not the whole run's bill (`run_cost_usd`). Each retry is one more queue read and
#   its share of a Worker invocation and its CPU; each dead letter adds the DLQ's write, read
#   and delete and its consumer's run. Exponential backoff's twice-as-many retries cost the
#   most; dropping the messages (no DLQ) is the cheapest, and the worst outcome. Either way a
#   15-minute CRM outage adds about a cent here: the bill is not the reason to pick a policy.

# %%
res = runs[("cdp-dlq", "exp 10 s..5 min x10")]
viz.plot_backlog(res, queues=["cdp-task-queue", "cdp-dlq"]);   # the outage is shaded

# %% [markdown]
# The whole incident, as its table row:

# %%
# NBVAL_CHECK_OUTPUT
res.incidents().drop(columns=["fault"]).T.rename(columns={0: "CRM outage"}).round(2)

# %% [markdown]
# And the bill of that run (`res.cost()`):

# %%
# NBVAL_CHECK_OUTPUT
res.cost()[["service", "item", "quantity", "run_cost", "monthly_cost"]].round(4)
