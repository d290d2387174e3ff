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
# # 07 · Export and deploy
#
# The model ends in files you can deploy: `wrangler.toml` (or `wrangler.jsonc`), a provisioning
# script that creates every queue, KV namespace and D1 database, and a TypeScript Worker
# skeleton with the queue handlers, routes, retries and Durable Object classes of the model.
# Everything is validated against wrangler's own `config-schema.json`; the test suite also runs
# `wrangler deploy --dry-run` and `wrangler dev` on it.

# %%
import pandas as pd

import cdpkit as cdp

pd.set_option("display.width", 120)
pd.set_option("display.precision", 3)

# %%
from cdpkit.demo import gateway, gateway_workload

p = gateway()
table = cdp.sweep(p, {"cdp-command-queue.max_batch_size": [10, 50, 100]}, gateway_workload(200),
                  duration=60, seed=1, progress=False)
best = table.sort_values(["p99_latency", "monthly_cost"]).index[0]
p = cdp.choose(p, table, best)       # the row's settings, each with where it came from
print(p.provenance)
table[["cdp-command-queue.max_batch_size", "p99_latency", "monthly_cost"]].round(3)

# %%
print(cdp.export.wrangler_toml(p))

# %%
print(cdp.export.wrangler_jsonc(p)[:1500])

# %%
print(cdp.export.provisioning(p))

# %%
print(cdp.export.worker_skeleton(p)[:2500])

# %% [markdown]
# Validation against wrangler's schema and cdpkit's own rules (limits, names, DLQ wiring, migrations):

# %%
config = cdp.deploy.configs(p)[p.name]        # the same data the TOML and JSONC are written from
cdp.deploy.validate_config(config)             # raises ConfigError naming the field if not
"valid"

# %% [markdown]
# And back: an existing `wrangler.toml` becomes a Pipeline you can simulate.

# %%
import pathlib
import tempfile

folder = pathlib.Path(tempfile.mkdtemp())
written = cdp.deploy.write_all(p, folder)
print("\n".join(str(w.relative_to(folder)) for w in written))
again = cdp.from_wrangler(folder / "wrangler.toml")
again

# %%
# NBVAL_CHECK_OUTPUT
# the imported pipeline exports the same config (comments aside: a config does not say why)
cdp.deploy.configs(again)[p.name] == cdp.deploy.configs(p)[p.name]
