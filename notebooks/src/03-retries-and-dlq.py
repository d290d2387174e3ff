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
# # 03 · Retries and dead-letter queues
#
# A message whose processing fails is retried after a delay; after `max_retries` failed
# retries it moves to the dead-letter queue (DLQ) if one is configured, or is dropped. The
# seed's gateway retries with an exponential backoff `min(60, 2**attempts * 5)` seconds
# and its DLQ consumer writes each dead letter to D1 and alerts the on-call channel.

# %%
import pandas as pd

import cdpkit as cdp
from cdpkit import viz

pd.set_option("display.width", 120)
pd.set_option("display.precision", 3)


# %%
def gateway_commands(mode="per_message", failure=0.05, permanent=0.2):
    p = cdp.Pipeline("commands")
    p.add_source("http", queue="cdp-command-queue")
    p.add_queue("cdp-command-queue", max_batch_size=10, max_batch_timeout=5, max_retries=3,
                dead_letter_queue="cdp-dlq")
    p.add_consumer("cdp-command-queue", service={"base": 0.01, "per_message": 0.002},
                   failure=failure, permanent=permanent,
                   retry={"policy": "exponential", "base": 5, "cap": 60, "mode": mode})
    p.add_queue("cdp-dlq", max_batch_size=10, max_batch_timeout=5)
    p.add_consumer("cdp-dlq", writes=["DB"], publish=["cdp-alert-queue"])
    p.add_queue("cdp-alert-queue", max_batch_size=10, max_batch_timeout=5)
    p.add_consumer("cdp-alert-queue", writes=["ONCALL_WEBHOOK"])
    p.add_store("DB", kind="d1", latency=0.005)
    p.add_store("ONCALL_WEBHOOK", kind="sink", latency={"exp": 0.15})
    return p

res = cdp.simulate(gateway_commands(), cdp.Poisson(rate=20), duration=300, seed=3)
res

# %% [markdown]
# Every message's fate, per queue (a dead letter appears again on the DLQ, where it is acked):

# %%
# NBVAL_CHECK_OUTPUT
res.messages.groupby(["queue", "outcome"], observed=True).size().unstack(fill_value=0)

# %% [markdown]
# Deliveries per message on the command queue: most succeed at once; transient failures
# succeed on a retry; poison messages (20 % of failures here) fail all 4 attempts and are
# dead-lettered. The retry delays follow the backoff: 10 s, 20 s, 40 s after attempts 1, 2, 3.

# %%
# NBVAL_CHECK_OUTPUT
commands = res.messages[res.messages["queue"] == "cdp-command-queue"]
commands.groupby(["deliveries", "outcome"], observed=True).size().rename("messages").to_frame()

# %%
# NBVAL_CHECK_OUTPUT
policy = gateway_commands().spec("cdp-command-queue.consumer").retry
pd.Series({attempt: policy.delay(attempt) for attempt in range(1, 6)}, name="retry delay (s)")

# %%
viz.plot_outcomes(res);

# %% [markdown]
# The DLQ consumer wrote one D1 row per dead letter and the alert queue's consumer called the
# webhook once per alert:

# %%
# NBVAL_CHECK_OUTPUT
rows = res.runtime.databases["DB"].table("writes")
{"dead_lettered": int((res.messages["outcome"] == "dead_lettered").sum()),
 "d1_rows": len(rows), "webhook_calls": res.runtime.sinks["ONCALL_WEBHOOK"].calls}

# %% [markdown]
# ## Per-message retry vs `retry_all`
#
# `message.retry()` retries only the failed message; `batch.retry_all()` (or throwing from
# the handler) retries the whole batch, so its healthy messages are processed again.

# %%
# NBVAL_CHECK_OUTPUT
rows = {}
for mode in ("per_message", "retry_all"):
    r = cdp.simulate(gateway_commands(mode=mode, permanent=0.0), cdp.Poisson(rate=20), duration=300, seed=3)
    s = r.summary()
    rows[mode] = {"deliveries": int(r.messages.query("queue == 'cdp-command-queue'")["deliveries"].sum()),
                  "retries": int(s["retries"]), "dead_lettered": int(s["dead_lettered"]),
                  "p99_latency": round(s["p99_latency"], 1)}
pd.DataFrame.from_dict(rows, orient="index")

# %% [markdown]
# ## Dead-letter fraction against theory
#
# With independent transient failures of probability p and R retries, a message is
# dead-lettered with probability p^(R+1).

# %%
# NBVAL_CHECK_OUTPUT
p_fail, R = 0.3, 3
q = cdp.Pipeline("dlq-theory")
q.add_source("http", queue="work")
q.add_queue("work", max_batch_size=10, max_batch_timeout=1, max_retries=R, dead_letter_queue="work-dlq")
q.add_consumer("work", failure=p_fail, retry={"policy": "fixed", "base": 1})
q.add_queue("work-dlq")
q.add_consumer("work-dlq")
s = cdp.simulate(q, cdp.Poisson(rate=100), duration=200, seed=1).summary()
{"simulated": round(float(s["dead_lettered"] / s["messages"]), 4), "theory": round(p_fail ** (R + 1), 4)}
