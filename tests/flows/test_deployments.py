"""The deployments `cinegraph serve` registers, built without serving them."""

from __future__ import annotations

import pytest
from prefect.deployments.runner import RunnerDeployment

from cinegraph.errors import CinegraphError
from cinegraph.flows.deployments import DEFAULT_REFRESH_CRON, build_deployments


def _props(schema: dict, name: str) -> dict:
    """Properties of the pydantic model behind parameter ``name`` (following $ref)."""
    ref = schema["properties"][name].get("$ref") or schema["properties"][name]["allOf"][0]["$ref"]
    return schema["definitions"][ref.rsplit("/", 1)[-1]]["properties"]


@pytest.mark.parametrize(("cron", "tz"), [(DEFAULT_REFRESH_CRON, "UTC"), ("*/30 * * * *", "Europe/Paris")])
def test_refresh_is_scheduled_and_the_others_run_on_demand(cron: str, tz: str) -> None:
    deployments = {d.name: d for d in build_deployments(cron, tz)}
    assert set(deployments) == {"etl-refresh", "train", "pipeline"}
    (schedule,) = deployments["etl-refresh"].schedules
    assert (schedule.schedule.cron, schedule.schedule.timezone) == (cron, tz)
    assert not deployments["train"].schedules and not deployments["pipeline"].schedules


def _schema(deployment: RunnerDeployment) -> dict:
    """The parameter schema the deployment registers (what the UI renders its form from)."""
    return deployment._parameter_openapi_schema.model_dump()


def test_parameter_schemas_render_the_forms() -> None:
    deployments = {d.name: d for d in build_deployments()}
    refresh = _schema(deployments["etl-refresh"])
    fields = _props(refresh, "params")
    assert {"variant", "mirror", "match", "load_neo4j", "download_cache_hours"} <= set(fields)
    assert fields["variant"]["default"] == "ml-latest-small"
    assert "ml-1m" in fields["variant"]["enum"]
    train = _schema(deployments["train"])
    fields = _props(train, "params")
    assert {"mode", "subgraph", "model", "seeds", "source", "top_k"} <= set(fields)
    assert fields["mode"]["enum"] == ["train", "benchmark"] and fields["seeds"]["default"] == [0]
    model = train["definitions"]["TrainConfig"]["properties"]
    for field in ("hidden_dim", "gcn_epochs", "hgt_epochs", "fusion_epochs", "gcn_weights", "device", "seed"):
        assert "default" in model[field], field
    subgraph = train["definitions"]["ExportFilter"]["properties"]
    assert {"min_user_ratings", "year_min", "year_max", "node_types", "edge_types"} <= set(subgraph)
    pipeline = _schema(deployments["pipeline"])
    assert {"refresh", "train"} <= set(_props(pipeline, "params"))


def test_a_bad_cron_is_refused() -> None:
    with pytest.raises(CinegraphError, match="refresh-cron"):
        build_deployments("every day")


def test_serve_mirror_and_out_are_the_deployment_defaults(tmp_path) -> None:
    deployments = {d.name: d for d in build_deployments(mirror="/srv/mirror", out=tmp_path / "out")}
    out = str(tmp_path / "out")
    assert deployments["etl-refresh"].parameters == {"params": {"out": out, "mirror": "/srv/mirror"}}
    assert deployments["train"].parameters == {"params": {"snapshot": f"{out}/snapshot", "out": f"{out}/runs"}}
    assert deployments["pipeline"].parameters["params"]["refresh"]["mirror"] == "/srv/mirror"
    assert "mirror" not in build_deployments(out=tmp_path)[0].parameters["params"]  # official sites


def test_form_schema_explains_every_field_and_shows_no_null() -> None:
    schemas = {d.name: _schema(d) for d in build_deployments()}
    for schema in schemas.values():
        text = str(schema)
        assert "'null'" not in text and "None" not in text  # no `Property is type "None"` in the form
        for name, model in schema["definitions"].items():
            for field, spec in model["properties"].items():
                assert spec.get("title") and spec.get("description"), f"{name}.{field}"
    train = schemas["train"]
    fields = _props(train, "params")
    assert fields["write_back"]["enum"] == [True, False] and "default" not in fields["write_back"]
    model = train["definitions"]["TrainConfig"]["properties"]
    assert model["device"]["enum"] == ["cpu", "cuda"] and model["ks"]["uniqueItems"] is True
    assert model["gcn_weights"]["additionalProperties"]["minimum"] == 0
    assert fields["seeds"]["uniqueItems"] is True and fields["seeds"]["items"]["minimum"] == 0
    subgraph = train["definitions"]["ExportFilter"]["properties"]
    assert "KNOWN_FOR" in subgraph["edge_types"]["items"]["enum"]
    assert "Person" in subgraph["node_types"]["items"]["enum"]
