"""The deploy layer tells the truth: lossless multi-Worker import, strict import, JSONC
strings, reserved names, numpy values, DLQ cycles, secrets never written."""

from __future__ import annotations

import contextlib
import json

import numpy as np
import pytest
import tomlkit
from hypothesis import given, settings
from hypothesis import strategies as st

import cdpkit as cdp
from cdpkit.deploy import (
    configs,
    from_wrangler,
    loads_jsonc,
    looks_secret,
    queue_order,
    read_config,
    unmodelled,
    validate_config,
    write_all,
)


def shop() -> cdp.Pipeline:
    p = cdp.Pipeline("shop")
    p.add_source("http", queue="orders")
    p.add_queue("orders")
    p.add_consumer("orders")
    return p


def write(tmp_path, name: str, text: str):
    path = tmp_path / name
    path.write_text(text)
    return path


# ---------------------------------------------------------------------------- A: multi-Worker import


def test_multi_worker_import_keeps_every_binding(tmp_path):
    p = cdp.Pipeline.from_yaml("examples/multi-worker.yaml")
    files = [f for f in write_all(p, tmp_path) if f.name == "wrangler.toml"]
    with pytest.warns(UserWarning, match="'scoring-gateway' binds Durable Object class 'ScoringActor'.*"
                                         "'scoring-actors' produces to queue 'score-events'"):
        again = from_wrangler(*files)
    assert configs(again) == {f.parent.name: read_config(f) for f in files} == configs(p)
    assert unmodelled(again) == [
        "Worker 'scoring-gateway' binds Durable Object class 'ScoringActor', but no modelled node of it uses it",
        "Worker 'scoring-actors' produces to queue 'score-events', but no modelled node of it uses it"]
    assert unmodelled(p) == []


def test_import_keeps_what_wrangler_accepts_and_cdpkit_does_not_model(tmp_path):
    path = write(tmp_path, "wrangler.toml", """
name = "w"
main = "src/worker.ts"
compatibility_date = "2024-01-01"
compatibility_flags = ["nodejs_compat"]
[triggers]
crons = ["*/5 * * * *"]
[[queues.producers]]
binding = "JOBS"
queue = "jobs"
[[queues.consumers]]
queue = "jobs"
max_batch_size = 10
visibility_timeout_ms = 3000
[[kv_namespaces]]
binding = "CACHE"
id = "0123456789abcdef0123456789abcdef"
""")
    with pytest.warns(UserWarning, match=r"compatibility_flags.*triggers"):
        p = from_wrangler(path)
    assert p.spec("jobs")["visibility_timeout_ms"] == 3000     # a setting of the table now
    assert configs(p)["w"] == read_config(path)
    assert "d1" not in cdp.export.provisioning(p)


# ---------------------------------------------------------------------------- B: strict import


@pytest.mark.parametrize("text, error", [
    ('name = "w"\n[[queues.consumers]]\nqueue = "jobs"\nmax_batch_sise = 10\n',
     r"wrangler.toml: queues.consumers\[0\] \(queue 'jobs'\): unknown key 'max_batch_sise'; did you mean 'max_batch_size'\?"),
    ('name = "w"\ncompatability_date = "2025-01-01"\n',
     r"wrangler.toml: \(top level\): unknown key 'compatability_date'; did you mean 'compatibility_date'\?"),
    ('name = "w"\n[[durable_objects.bindings]]\nname = "A"\nclass = "A"\n',
     r"durable_objects.bindings\[0\] \(name 'A'\): unknown key 'class'; did you mean 'class_name'\?"),
    ('name = "w"\n[[queues.consumers]]\nmax_batch_size = 10\n',
     r"wrangler.toml: queues.consumers\[0\]: 'queue' is a required property"),
    ('name = "w"\n[[durable_objects.bindings]]\nname = "A"\n',
     r"wrangler.toml: durable_objects.bindings\[0\]: 'class_name' is a required property"),
    ('name = "w"\nqueues = 3\n', r"wrangler.toml: queues: 3 is not of type 'object'"),
    ('name = "w"\n[[queues.consumers]]\nqueue = "jobs"\nmax_batch_size = 500\n',
     r"wrangler.toml: queues.consumers queue='jobs': .*max_batch_size=500"),
    ('name = "w"\n[[durable_objects.bindings]]\nname = "A"\nclass_name = "class"\n'
     '[[migrations]]\ntag = "v1"\nnew_sqlite_classes = ["class"]\n',
     r"wrangler.toml: durable_objects.bindings\[0\].class_name='class' is not allowed.*reserved word"),
])
def test_import_errors_name_the_file_the_table_and_the_field(tmp_path, text, error):
    path = write(tmp_path, "wrangler.toml", text)
    with pytest.raises(cdp.ConfigError, match=error):
        from_wrangler(path)


def test_without_the_schema_import_still_names_the_field(monkeypatch, tmp_path):
    import cdpkit.deploy.schema as schema

    def missing() -> None:
        raise FileNotFoundError("wrangler's config-schema.json was not found")

    monkeypatch.setattr(schema, "schema_path", missing)
    monkeypatch.delenv("CDPKIT_WRANGLER_SCHEMA", raising=False)
    path = write(tmp_path, "wrangler.toml", 'name = "w"\n[[queues.consumers]]\nmax_batch_size = 1\n')
    with pytest.warns(UserWarning, match="not checked"), \
            pytest.raises(cdp.ConfigError, match=r"queues.consumers\[0\].queue=None is not allowed"):
        from_wrangler(path)


def test_two_workers_cannot_consume_one_queue(tmp_path):
    a = write(tmp_path, "a.toml", 'name = "a"\n[[queues.consumers]]\nqueue = "jobs"\n')
    b = write(tmp_path, "b.toml", 'name = "b"\n[[queues.consumers]]\nqueue = "jobs"\n')
    with pytest.raises(cdp.ConfigError, match="b.toml: .*queue='jobs'.*consumed by 'a' already"):
        from_wrangler(a, b)


# ---------------------------------------------------------------------------- C: JSONC


def test_jsonc_strings_keep_commas_brackets_and_comment_markers(tmp_path):
    text = '{"name": "w", "vars": {"T": "a, ]", "V": "b,}", "U": "x // y", "W": "/* z */,"}, // c\n}'
    assert loads_jsonc(text)["vars"] == {"T": "a, ]", "V": "b,}", "U": "x // y", "W": "/* z */,"}
    path = write(tmp_path, "wrangler.jsonc", text)
    assert from_wrangler(path).vars == {"T": "a, ]", "V": "b,}", "U": "x // y", "W": "/* z */,"}


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20)


@settings(max_examples=200, deadline=None)
@given(json_values, st.booleans(), st.sampled_from([None, 2]))
def test_jsonc_reads_comment_free_json_as_json_does(value, ascii_only, indent):
    text = json.dumps(value, ensure_ascii=ascii_only, indent=indent)
    assert loads_jsonc(text) == json.loads(text)


@settings(max_examples=100, deadline=None)
@given(st.dictionaries(st.text(), st.text(), max_size=4))
def test_jsonc_comments_and_trailing_commas_around_any_strings(value):
    items = "".join(f"  {json.dumps(k)}: {json.dumps(v)}, // {json.dumps(v)[1:-1].replace(chr(10), ' ')}\n"
                    for k, v in value.items())
    assert loads_jsonc("/* head */ {\n" + items + "}\n") == value


# ---------------------------------------------------------------------------- D: names and numpy


@pytest.mark.parametrize("name", ["class", "default", "delete", "string"])
def test_reserved_words_are_not_class_names(name):
    with pytest.raises(cdp.ConfigError, match=f"actor class name='{name}' is not allowed; allowed: a "
                                              "JavaScript identifier that is not a reserved word"):
        shop().add_actor(name)


def test_reserved_words_are_not_method_names():
    with pytest.raises(cdp.ConfigError, match="actor 'Scorer': method='delete' is not allowed.*reserved word"):
        shop().add_actor("Scorer", method="delete")


@pytest.mark.parametrize("name", ["Env", "Response"])
def test_names_the_skeleton_declares_or_uses_are_not_class_names(name):
    p = shop()
    p.add_actor(name)
    with pytest.raises(cdp.ConfigError, match=f"actor class name='{name}' is not allowed; allowed: a name the "
                                              "Worker skeleton does not declare itself"):
        cdp.export.wrangler_toml(p)


def test_validate_config_rejects_a_reserved_class_name():
    with pytest.raises(cdp.ConfigError, match=r"durable_objects.bindings\[0\].class_name='default'"):
        validate_config({"name": "w", "main": "x.ts", "durable_objects": {"bindings": [
            {"name": "D", "class_name": "default"}]}, "migrations": [{"tag": "v1", "new_sqlite_classes": ["default"]}]})


def test_numpy_values_from_a_sweep_row_export_as_plain_values(tmp_path):
    p = shop().set("orders.max_batch_size", np.int64(20)).set("orders.max_batch_timeout", np.float64(0.5))
    p = p.set("orders.delivery_delay", np.int64(3))
    p.vars.update({"RATE": np.float64(0.25), "ON": np.bool_(True), "N": np.int32(7)})
    toml = tomlkit.parse(cdp.export.wrangler_toml(p)).unwrap()
    jsonc = loads_jsonc(cdp.export.wrangler_jsonc(p))
    assert toml == jsonc
    assert toml["queues"]["consumers"][0] == {"queue": "orders", "max_batch_size": 20, "max_batch_timeout": 0.5}
    assert toml["queues"]["producers"][0]["delivery_delay"] == 3
    assert toml["vars"] == {"N": 7, "ON": True, "RATE": 0.25}
    assert [type(v) for v in toml["vars"].values()] == [int, bool, float]
    write_all(p, tmp_path)


# ---------------------------------------------------------------------------- E: DLQ cycles


def dlq_cycle() -> cdp.Pipeline:
    p = cdp.Pipeline("cyc")
    p.add_queue("a", dead_letter_queue="b")
    p.add_queue("b", dead_letter_queue="a")
    p.add_source("s", queue="a")
    p.add_consumer("a")
    p.add_consumer("b")
    return p


def test_dead_letter_cycles_and_long_chains_do_not_recurse(tmp_path):
    assert sorted(queue_order(dlq_cycle())) == ["a", "b"]
    chain = cdp.Pipeline("chain")
    names = [f"q{i}" for i in range(3000)]         # deeper than Python's recursion limit
    for name, dlq in zip(names, [*names[1:], None]):
        chain.add_queue(name, **({"dead_letter_queue": dlq} if dlq else {}))
    assert queue_order(chain) == names[::-1]
    # the model may reject the cycle; the export must never die of RecursionError
    with contextlib.suppress(cdp.ConfigError):
        write_all(dlq_cycle(), tmp_path)


# ---------------------------------------------------------------------------- F: secrets


SECRETS = [
    ("DB_PASS", "hunter2"), ("DATABASE_URL", "postgres://app:s3cr3t@db.internal:5432/app"),
    ("SLACK_WEBHOOK_URL", "https://hooks.slack.com/services/T000/B000/XXXX"),
    ("JWT_SIGNING_KEY", "change-me"), ("jwtSigningKey", "x"), ("apiKey", "k"), ("GITHUB_TOKEN", "x"),
    ("AWS_SECRET_ACCESS_KEY", "x"), ("GCP_CREDENTIALS", "{}"), ("PRIVATE_PEM", "x"), ("AUTH_HEADER", "x"),
    ("ALERTS", "https://hooks.slack.com/services/T0A1B2C3D/B0A1B2C3D/abcdefghijklmnopqrstuvwx"),
    ("CHAT", "https://discord.com/api/webhooks/123456789012345678/abcDEF-ghi_JKL"),
    ("CACHE", "redis://:p4ss@cache:6379/0"),
    ("ERRORS", "https://0123456789abcdef0123456789abcdef@o1.ingest.sentry.io/1"),
    ("MONGO", "mongodb+srv://user:pw@cluster0.example.net/db"),
    ("SIGNED", "https://bucket.s3.amazonaws.com/x?X-Amz-Signature=abc&X-Amz-Credential=AKIA"),
    ("FEED", "https://api.example.com/v1/feed?api_key=abcd1234"),
    ("FEED2", "https://api.example.com/v1/feed?token=abc"),
    ("STRIPE", "sk_live_51HabcdefGHIJKL"), ("GH", "ghp_0123456789abcdefABCDEF0123456789abcd"),
    ("SLACK", "xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx"), ("AWS", "AKIAIOSFODNN7EXAMPLE"),
    ("OPENAI", "sk-proj-abcdefghijklmnop1234"), ("GOOGLE", "AIzaSyA-abcdefghijklmnopqrstuvwxyz12345"),
    ("ID_TOKEN_SAMPLE", "x"),
    ("SESSION", "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U"),
    ("CERT", "-----BEGIN PRIVATE KEY-----\nMIIEv...\n-----END PRIVATE KEY-----"),
    ("HASH", "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"),
    ("SHORT_RANDOM", "Zx8Kq2Lm9Pw4Rt7Yv1Bn"), ("CONFIG", {"db": {"password": "x"}}),
]
PLAIN = [
    ("LOG_LEVEL", "debug"), ("API_URL", "https://api.example.com"), ("MONKEY_MODE", "on"),
    ("KEYBOARD_LAYOUT", "us"), ("TURKEY_TIME", "12:00"), ("REGION", "eu-west-1"),
    ("DATABASE_URL", "postgres://db.internal:5432/app"), ("ENVIRONMENT", "production"),
    ("SERVICE_NAME", "scoring-gateway-v2"), ("MODEL", "gpt-4o-mini-2024-07-18"),
    ("DOCS_URL", "https://developers.cloudflare.com/queues/configuration/batching-retries/"),
    ("CALLBACK_URL", "https://shop.example.com/orders/callback?source=queue"),
    ("MAX_ITEMS", 100), ("ENABLED", True), ("FEATURES", {"beta": True}), ("EMAIL_FROM", "noreply@example.com"),
    ("GREETING", "Hello, world! Welcome to the shop."), ("CRON", "*/5 * * * *"),
    ("VERSION", "1.4.2-rc.1+build.20250901"), ("BUCKET_PATH", "logs/2025/09/01"),
]


@pytest.mark.parametrize("name, value", SECRETS, ids=[n for n, _ in SECRETS])
def test_secrets_are_never_written_and_listed_for_wrangler_secret_put(tmp_path, name, value):
    assert looks_secret(name, value)
    p = shop()
    p.vars[name] = value
    p.vars["LOG_LEVEL"] = "debug"
    written = write_all(p, tmp_path, format="jsonc")
    config = read_config(tmp_path / "wrangler.jsonc")
    assert config["vars"] == {"LOG_LEVEL": "debug"}
    shown = json.dumps(value)[1:-1] if isinstance(value, str) else json.dumps(value)
    for f in written:
        assert len(shown) < 8 or shown not in f.read_text(), f      # "x" is in any file
    assert f"secret put {name}" in (tmp_path / "provision.sh").read_text()
    assert f"wrangler secret put {name}" in (tmp_path / "SECRETS.md").read_text()


@pytest.mark.parametrize("name, value", PLAIN, ids=[n for n, _ in PLAIN])
def test_plain_vars_stay_in_vars(name, value):
    assert not looks_secret(name, value)
    p = shop()
    p.vars[name] = value
    assert tomlkit.parse(cdp.export.wrangler_toml(p)).unwrap()["vars"] == {name: value}
    assert name not in cdp.export.secrets(p)
