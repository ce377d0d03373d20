"""The canary's typed candidate parameter (flows/_candidate.py) and its schema in Prefect."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from flows._candidate import Candidate


def test_fields_become_spec_changes():
    c = Candidate(
        image="nvcr.io/x:1",
        engine_args=["--max-model-len", "4096"],
        replicas=2,
        model_revision="abc",
        changes={"serving": {"mocker": {"speedup_ratio": 12}}},
    )
    assert c.as_changes() == {
        "serving": {
            "image": "nvcr.io/x:1",
            "workers": {"engine_args": ["--max-model-len", "4096"], "replicas": 2},
            "mocker": {"speedup_ratio": 12},
        },
        "model": {"revision": "abc"},
    }


def test_the_earlier_plain_dict_still_works():
    assert Candidate.model_validate({"serving": {"mocker": {"speedup_ratio": 12}}}).as_changes() == {
        "serving": {"mocker": {"speedup_ratio": 12}}
    }
    assert Candidate.model_validate({"spec": "c.yaml"}).as_changes() == {"spec": "c.yaml"}
    assert Candidate.model_validate({}).as_changes() == {}


def test_a_whole_spec_excludes_the_fields():
    with pytest.raises(ValidationError, match="whole candidate spec excludes"):
        Candidate(spec="c.yaml", replicas=2)


def test_prefect_shows_a_typed_described_form():
    from prefect.utilities.callables import parameter_schema

    from flows.canary import canary

    schema = parameter_schema(canary.fn).model_dump_for_openapi()
    props = schema["properties"]
    assert "what the candidate changes" in props["candidate"]["description"]
    assert props["spec"]["description"].startswith("the stable deployment's spec")
    cand = schema["definitions"]["Candidate"]["properties"]
    assert set(cand) == {"image", "engine_args", "model_revision", "replicas", "spec", "changes"}
    assert all(p.get("description") for p in cand.values())
