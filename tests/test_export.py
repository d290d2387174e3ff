"""Export to wrangler.toml / .jsonc, provisioning, skeleton; import; validation; safety."""

from __future__ import annotations

import warnings

import pytest
import tomlkit
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import cdpkit as cdp
from cdpkit.demo import gateway
from cdpkit.deploy import configs, from_wrangler, read_config, validate_config, write_all
from cdpkit.deploy.wrangler import loads_jsonc


def parse_toml(text: str) -> dict:
    return tomlkit.parse(text).unwrap()


def test_gateway_config_carries_every_modelled_setting():
    p = gateway().set("cdp-command-queue.max_batch_size", 50, why="sweep row 2: p99 1.2 s, $512/month")
    text = cdp.export.wrangler_toml(p)
    c = parse_toml(text)
    consumers = {x["queue"]: x for x in c["queues"]["consumers"]}
    for queue in p.nodes("queue"):
        spec = p.spec(queue)
        for key in ("max_batch_size", "max_batch_timeout", "max_retries", "dead_letter_queue", "max_concurrency"):
            assert consumers[queue].get(key) == spec.get(key), (queue, key)
    assert consumers["cdp-command-queue"]["max_batch_size"] == 50
    assert "max_batch_size = 50 # sweep row 2: p99 1.2 s, $512/month" in text
    producers = {x["queue"]: x["binding"] for x in c["queues"]["producers"]}
    assert producers["cdp-command-queue"] == "CDP_COMMAND_QUEUE" and "cdp-dlq" not in producers
    classes = {b["class_name"] for b in c["durable_objects"]["bindings"]}
    assert classes == set(p.nodes("actor")) == set(c["migrations"][0]["new_sqlite_classes"])
    assert c["kv_namespaces"][0]["binding"] == "CACHE" and c["d1_databases"][0]["binding"] == "DB"
    validate_config(c)


def test_jsonc_is_the_same_config_with_comments():
    p = gateway().set("cdp-task-queue.max_retries", 5, why="DLQ share 0.1 % at p=0.3")
    jsonc = cdp.export.wrangler_jsonc(p)
    assert '"max_retries": 5, // DLQ share 0.1 % at p=0.3' in jsonc
    assert loads_jsonc(jsonc) == parse_toml(cdp.export.wrangler_toml(p))


def test_provisioning_creates_dead_letter_queues_first():
    script = cdp.export.provisioning(gateway())
    lines = [line for line in script.splitlines() if line.startswith("$WRANGLER")]
    created = [line.split()[-1] for line in lines if "queues create" in line]
    assert set(created) == set(gateway().nodes("queue"))
    assert created.index("cdp-dlq") < created.index("cdp-command-queue")
    assert created.index("cdp-dlq") < created.index("cdp-task-queue")
    assert any("kv namespace create CACHE" in x for x in lines)
    assert any("d1 create cdp-gateway-db" in x for x in lines)
    assert "secret put ONCALL_WEBHOOK_URL" in script


def test_skeleton_matches_the_model():
    ts = cdp.export.worker_skeleton(gateway())
    for message_type in ("web_scraping", "email_validation", "crm_sync"):
        assert f'body.type === "{message_type}"' in ts
    assert "Math.min(60, 5 * 2 ** message.attempts)" in ts            # the seed's backoff
    assert "message.retry({ delaySeconds: 30 })" in ts                # the task queue's fixed retry
    for actor in gateway().nodes("actor"):
        assert f"export class {actor} extends DurableObject<Env>" in ts
    assert 'case "cdp-dlq":' in ts and "INSERT INTO messages" in ts
    assert 'env.CDP_EVENT_QUEUE.send({ ...body, type: "WorkflowOrchestratorActor.completed" })' in ts
    p = cdp.Pipeline.from_yaml("examples/multi-worker.yaml")
    gw, actors = cdp.export.worker_skeleton(p), cdp.export.worker_skeleton(p, "scoring-actors")
    assert ".score(body)" in gw and "class ScoringActor" not in gw
    assert "export class ScoringActor" in actors and "async score(body: Body)" in actors


def test_runtime_queues_get_the_rest_api_path_and_secrets():
    p = gateway()
    p.runtime_queues.append("tenant-*-queue")
    ts = cdp.export.worker_skeleton(p)
    assert "api.cloudflare.com/client/v4/accounts/${env.CLOUDFLARE_ACCOUNT_ID}/queues" in ts
    assert {"CLOUDFLARE_API_TOKEN", "CLOUDFLARE_ACCOUNT_ID"} <= set(cdp.export.secrets(p))
    c = configs(p)[p.name]
    assert "QUEUE_IDS" in [b["binding"] for b in c["kv_namespaces"]]
    assert "CLOUDFLARE_API_TOKEN" not in cdp.export.wrangler_toml(p)


def test_multi_worker_export_binds_by_script_name():
    p = cdp.Pipeline.from_yaml("examples/multi-worker.yaml")
    cs = configs(p)
    assert list(cs) == ["scoring-gateway", "scoring-actors"]
    gw, actors = cs["scoring-gateway"], cs["scoring-actors"]
    assert gw["durable_objects"]["bindings"] == [
        {"name": "SCORING_ACTOR", "class_name": "ScoringActor", "script_name": "scoring-actors"}]
    assert "migrations" not in gw and actors["migrations"][0]["new_sqlite_classes"] == ["ScoringActor"]
    assert [x["queue"] for x in actors["queues"]["producers"]] == ["score-events"]
    validate_config(gw, [actors])
    validate_config(actors, [gw])


# ---------------------------------------------------------------------------- validation


def test_wrangler_schema_rejects_bad_types():
    with pytest.raises(cdp.ConfigError, match="config-schema.json rejects.*max_batch_size"):
        validate_config({"name": "w", "main": "x.ts", "queues": {"consumers": [{"queue": "q", "max_batch_size": "ten"}]}})
    with pytest.raises(cdp.ConfigError, match="nonsense"):
        validate_config({"name": "w", "main": "x.ts", "nonsense": 1})


def test_cdpkit_rules_beyond_the_schema():
    base = {"name": "w", "main": "x.ts", "compatibility_date": "2025-09-01"}
    with pytest.raises(cdp.ConfigError, match=r"queues.consumers\[0\].*max_batch_size=500.*1 to 100"):
        validate_config({**base, "queues": {"consumers": [{"queue": "q", "max_batch_size": 500}]}})
    with pytest.raises(cdp.ConfigError, match="dead_letter_queue='q' is the queue itself"):
        validate_config({**base, "queues": {"consumers": [{"queue": "q", "dead_letter_queue": "q"}]}})
    with pytest.raises(cdp.ConfigError, match="class 'Orchestrator' has no migration"):
        validate_config({**base, "durable_objects": {"bindings": [{"name": "ORCH", "class_name": "Orchestrator"}]}})
    with pytest.raises(cdp.ConfigError, match="queue"):
        validate_config({**base, "queues": {"producers": [{"binding": "Q", "queue": "Bad_Queue"}]}})


# ---------------------------------------------------------------------------- safety


NASTY = ['say "hi"', "two\nlines", "]]\n[[queues.consumers]]\nqueue = \"evil\"", "ünïcödé ✓ 漢字",
         "back\\slash", "tab\there", "// not a comment", "/* nor this */", "# nor this"]


@pytest.mark.parametrize("value", NASTY)
def test_strings_are_escaped_in_toml_and_jsonc(value):
    p = gateway()
    p.vars["GREETING"] = value
    toml_config = parse_toml(cdp.export.wrangler_toml(p))
    jsonc_config = loads_jsonc(cdp.export.wrangler_jsonc(p))
    assert toml_config["vars"]["GREETING"] == value == jsonc_config["vars"]["GREETING"]
    assert len(toml_config["queues"]["consumers"]) == 5 == len(jsonc_config["queues"]["consumers"])


@pytest.mark.parametrize("why", NASTY)
def test_provenance_comments_cannot_inject(why):
    p = gateway().set("cdp-command-queue.max_batch_size", 20, why=why)
    plain = configs(gateway().set("cdp-command-queue.max_batch_size", 20))[p.name]
    assert parse_toml(cdp.export.wrangler_toml(p)) == plain
    assert loads_jsonc(cdp.export.wrangler_jsonc(p)) == plain


def test_secrets_are_listed_never_written(tmp_path):
    p = gateway()
    p.vars.update({"REGION": "eu", "API_TOKEN": "abc123", "STRIPE": "sk_live_51Habcdef", "LONG": "A" * 40})
    for text in (cdp.export.wrangler_toml(p), cdp.export.wrangler_jsonc(p), cdp.export.worker_skeleton(p)):
        assert "abc123" not in text and "sk_live" not in text and "A" * 40 not in text
    assert parse_toml(cdp.export.wrangler_toml(p))["vars"] == {"REGION": "eu"}
    write_all(p, tmp_path)
    listed = (tmp_path / "SECRETS.md").read_text()
    for name in ("API_TOKEN", "STRIPE", "LONG", "ONCALL_WEBHOOK_URL"):
        assert f"wrangler secret put {name}" in listed


def test_names_cloudflare_would_reject_are_clear_errors():
    p = cdp.Pipeline("Not A Worker")
    p.add_source("http", queue="jobs")
    p.add_queue("jobs")
    p.add_consumer("jobs")
    with pytest.raises(cdp.ConfigError, match="'Not A Worker'.*lowercase letters, digits and dashes"):
        cdp.export.wrangler_toml(p)
    with pytest.raises(cdp.ConfigError, match="worker='Actors!'"):
        gateway().add_actor("Extra", worker="Actors!")


def test_overwrite_needs_to_be_explicit(tmp_path):
    written = write_all(gateway(), tmp_path)
    before = [f.read_text() for f in written]
    (tmp_path / "wrangler.toml").write_text("# my edits\n")
    with pytest.raises(FileExistsError, match="overwrite=True"):
        write_all(gateway(), tmp_path)
    assert (tmp_path / "wrangler.toml").read_text() == "# my edits\n"
    assert [f.read_text() for f in write_all(gateway(), tmp_path, overwrite=True)] == before


# ---------------------------------------------------------------------------- import


def test_import_reads_what_it_can_and_states_defaults(tmp_path):
    write_all(gateway(), tmp_path)
    p = cdp.from_wrangler(tmp_path / "wrangler.toml")
    assert set(p.nodes("queue")) == set(gateway().nodes("queue"))
    assert p.spec("cdp-command-queue") == gateway().spec("cdp-command-queue")
    assert set(p.nodes("actor")) == set(gateway().nodes("actor"))
    assert {s: p.spec(s).kind for s in p.nodes("store")} == {"CACHE": "kv", "DB": "d1"}
    assert p.spec("cdp-command-queue.consumer").failure == 0           # behaviour defaults
    # queues and consumers simulate as imported; actors must be wired first
    q = cdp.from_wrangler(tmp_path / "wrangler.toml")
    with pytest.raises(cdp.ConfigError, match="orphan"):
        cdp.simulate(q, cdp.Poisson(rate=10), duration=5)


queue_names = st.from_regex(r"[a-z][a-z0-9-]{0,10}", fullmatch=True)


@st.composite
def pipelines(draw):
    p = cdp.Pipeline(draw(st.from_regex(r"[a-z][a-z0-9-]{0,8}[a-z0-9]", fullmatch=True)))
    names = draw(st.lists(queue_names, min_size=1, max_size=4, unique=True))
    dlq = draw(st.sampled_from([None, *names])) if len(names) > 1 else None
    for name in names:
        settings = {}
        if name != dlq:
            for key, strategy in (("max_batch_size", st.integers(1, 100)),
                                  ("max_batch_timeout", st.sampled_from([0, 1, 5, 30, 60, 0.5])),
                                  ("max_retries", st.integers(0, 100)),
                                  ("max_concurrency", st.integers(1, 250)),
                                  ("retry_delay", st.integers(0, 43_200))):
                if draw(st.booleans()):
                    settings[key] = draw(strategy)
            if dlq and draw(st.booleans()):
                settings["dead_letter_queue"] = dlq
        if draw(st.booleans()):
            settings["delivery_delay"] = draw(st.integers(0, 43_200))
        p.add_queue(name, **settings)
        if draw(st.booleans()) or any(k != "delivery_delay" for k in settings):
            p.add_consumer(name)
    for i, name in enumerate(names):
        if draw(st.booleans()) or not any(True for _ in p.graph.predecessors(name)) and not list(p.graph.successors(name)):
            p.add_source(f"src-{i}", queue=name)
    consumers = p.nodes("consumer")
    for i in range(draw(st.integers(0, 3))):
        # some actors live in other Workers (bound with script_name); some are called by a
        # consumer and publish to a queue, some are bound by nothing modelled yet
        worker = draw(st.sampled_from([None, "actors-a", "actors-b"]))
        publish = draw(st.lists(st.sampled_from(names), max_size=1))
        p.add_actor(f"Actor{i}", worker=worker, publish=publish)
        if consumers and draw(st.booleans()):
            consumer = draw(st.sampled_from(consumers))
            if p.spec(consumer).calls is None:
                p = p.set(f"{consumer}.calls", f"Actor{i}")
    for i, kind in enumerate(draw(st.lists(st.sampled_from(["kv", "d1", "analytics"]), max_size=3))):
        p.add_store(f"STORE_{i}", kind=kind)
    if draw(st.booleans()):
        p.vars["NOTE"] = draw(st.text(max_size=20))
    return p


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pipelines(), st.sampled_from(["toml", "jsonc"]))
def test_export_import_export_is_identity(tmp_path_factory, p, fmt):
    folder = tmp_path_factory.mktemp("rt")
    first = [f for f in write_all(p, folder, format=fmt) if f.name == f"wrangler.{fmt}"]
    assert len(first) == len(cdp.deploy.workers(p))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")            # what is kept but not simulated
        again = from_wrangler(*first)
    assert {read_config(f)["name"]: read_config(f) for f in first} == configs(again)
    second = [f for f in write_all(again, folder / "again", format=fmt) if f.name == f"wrangler.{fmt}"]
    assert [f.read_text() for f in second] == [f.read_text() for f in first]


def test_without_wrangler_installed_export_warns_and_still_checks_limits(monkeypatch, tmp_path):
    import cdpkit.deploy.schema as schema

    def missing() -> None:
        raise FileNotFoundError("wrangler's config-schema.json was not found")

    monkeypatch.setattr(schema, "schema_path", missing)
    monkeypatch.delenv("CDPKIT_WRANGLER_SCHEMA", raising=False)
    with pytest.warns(UserWarning, match="cdpkit's rules only"):
        write_all(gateway(), tmp_path)
    with pytest.warns(UserWarning), pytest.raises(cdp.ConfigError, match="max_batch_size=500"):
        validate_config({"name": "w", "main": "x.ts", "queues": {"consumers": [{"queue": "q", "max_batch_size": 500}]}})
