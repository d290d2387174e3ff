"""Model files: YAML/JSON round trip and schema errors naming the node and field."""

import pytest

import cdpkit as cdp
from cdpkit import ConfigError

EXAMPLE = "examples/cdp-gateway.yaml"


def test_example_models_all_three_patterns_and_the_dlq():
    p = cdp.Pipeline.from_yaml(EXAMPLE)
    kinds = {(a, b): d["kind"] for a, b, d in p.graph.edges(data=True)}
    assert kinds[("cdp-command-queue.consumer", "WorkflowOrchestratorActor")] == "calls"   # pattern 1
    assert kinds[("cdp-task-queue.consumer", "WebScraperActor")] == "routes"               # pattern 2
    assert kinds[("WorkflowOrchestratorActor", "cdp-event-queue")] == "publishes"          # pattern 3
    assert kinds[("cdp-command-queue", "cdp-dlq")] == "dead_letters"
    assert kinds[("cdp-dlq.consumer", "DB")] == "writes"
    assert kinds[("cdp-dlq.consumer", "cdp-alert-queue")] == "publishes"


def test_round_trip_yaml_and_json():
    p = cdp.Pipeline.from_yaml(EXAMPLE)
    again = cdp.Pipeline.from_yaml(p.to_yaml())
    assert again.to_dict() == p.to_dict()
    from cdpkit.model.io import dump_json
    assert cdp.Pipeline.from_yaml(dump_json(p.to_dict())).to_dict() == p.to_dict()  # JSON is YAML


def test_example_simulates_and_dead_letters_reach_d1():
    p = cdp.Pipeline.from_yaml(EXAMPLE).set("cdp-command-queue.consumer.failure", 0.6)
    res = cdp.simulate(p, cdp.Poisson(rate=20, types={"execute_workflow": 1, "web_scraping": 1,
                                                     "email_validation": 1, "crm_sync": 1}),
                       duration=60, seed=2)
    s = res.summary()
    assert s["dead_lettered"] > 0
    rows = res.runtime.databases["DB"].table("writes")
    assert len(rows) == s["dead_lettered"]            # one D1 row per dead letter
    alerts = res.messages[res.messages["queue"] == "cdp-alert-queue"]
    assert len(alerts) == s["dead_lettered"]


@pytest.mark.parametrize("text, message", [
    ("name: x\nqueus: {}", "model: unknown field 'queus' \\(did you mean 'queues'\\?\\); allowed: name, sources, queues, actors, stores"),
    ("queues:\n  jobs: {max_batch_size: 500}", "queues.jobs: queue 'jobs': max_batch_size=500 is not allowed"),
    ("queues:\n  jobs: {consumer: {servce: 1}}", "queues.jobs.consumer: unknown field 'servce' \\(did you mean 'service'\\?\\); allowed: service"),
    ("queues:\n  jobs: {consumer: {service: {base: -1}}}", "queues.jobs.consumer: consumer of 'jobs': service base -1 is not allowed"),
    ("actors:\n  Orch: {instances: many}", "actors.Orch: actor 'Orch': instances='many' is not allowed"),
    ("sources:\n  http: {share: 1}", "sources.http: missing field 'queue'"),
    ("queues:\n  jobs: {consumer: {}}\nsources:\n  http: {queue: nope}",
     "'http' sends 'nope', but 'nope' is not in pipeline"),
    ("queues: [1, 2]", "queues: expected a mapping of name -> settings, got list"),
    ("a: [", "model file is not valid YAML"),
])
def test_schema_errors(text, message):
    with pytest.raises(ConfigError, match=message):
        cdp.Pipeline.from_yaml(text + "\n")


def test_missing_file():
    with pytest.raises(ConfigError, match="model file 'nope.yaml' does not exist"):
        cdp.Pipeline.from_yaml("nope.yaml")
