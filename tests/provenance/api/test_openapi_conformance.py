"""Property-based run of our own ``/openapi.json`` (schemathesis, issue 16's finding 14): every operation is called
with generated valid and invalid inputs, and every answer must be no 5xx and carry a status the document lists
(a form with too many fields used to answer an undocumented 400). Bounded for CI: a handful of examples per
operation, ~30 operations, well under a minute; the app is the real one over the API tests' fake service."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import not_a_server_error, status_code_conformance
from schemathesis.core.failures import FailureGroup

from provenance.api.app import create_app
from provenance.api.keys import create_api_key
from provenance.config import Settings
from tests.provenance.api.fakes import FakeService, textured_image

EXAMPLES_PER_OPERATION = 10


@pytest.fixture(scope="module")
def api_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[object, str]]:
    data_dir = tmp_path_factory.mktemp("conformance") / "data"
    service = FakeService.open(data_dir)
    service.ledger.add_publisher("acme")
    key = create_api_key(service.ledger.engine, "acme")
    settings = Settings(data_dir=data_dir, max_image_bytes=2_000_000, api_lookup_burst=100_000,
                        api_lookup_rate_per_s=1000, api_image_burst=100_000, api_image_rate_per_s=1000)
    app = create_app(lambda: service, settings=settings, anchor=False)
    with TestClient(app) as client:  # runs the lifespan; one registered image so that lookups find something
        resp = client.post("/v1/assets", headers={"Authorization": f"Bearer {key}"},
                           files={"file": ("p.png", textured_image(0), "image/png")})
        assert resp.status_code == 202, resp.text
        yield app, key
    service.ledger.close()


@pytest.fixture(scope="module")
def api_schema(api_app: tuple[object, str]) -> schemathesis.BaseSchema:
    app, _ = api_app
    return schemathesis.openapi.from_asgi("/openapi.json", app)


def test_every_operation_answers_documented_statuses_and_no_5xx(api_schema: schemathesis.BaseSchema,
                                                               api_app: tuple[object, str]) -> None:
    # schemathesis's pytest plugin does not run under pytest 9, so each operation's strategy is driven by hypothesis
    # here; every failure is collected, then reported together.
    _, key = api_app
    headers = {"Authorization": f"Bearer {key}"}
    failures: list[str] = []
    calls = 0
    for result in api_schema.get_all_operations():
        operation = result.ok()
        for mode in (schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE):
            try:
                strategy = operation.as_strategy(generation_mode=mode)
            except Exception as exc:  # noqa: BLE001 - e.g. nothing negative can be generated for this operation
                if mode is schemathesis.GenerationMode.POSITIVE:
                    failures.append(f"{operation.label}: no strategy ({exc})")
                continue

            @settings(max_examples=EXAMPLES_PER_OPERATION // 2, deadline=None, derandomize=True, database=None,
                      suppress_health_check=list(HealthCheck))
            @given(case=strategy)
            def call(case: schemathesis.Case) -> None:
                nonlocal calls
                calls += 1
                response = case.call(headers=headers)
                try:
                    case.validate_response(response, checks=[not_a_server_error, status_code_conformance])
                except (AssertionError, FailureGroup) as exc:
                    failures.append(f"{operation.label} [{mode.value}] -> {response.status_code}: "
                                    f"{str(exc).splitlines()[0][:300]}")

            try:
                call()
            except Unsatisfiable:  # no invalid input can be generated for this operation (e.g. no parameters)
                if mode is schemathesis.GenerationMode.POSITIVE:
                    failures.append(f"{operation.label}: no valid input could be generated")
    print(f"schemathesis: {calls} calls")
    assert calls >= 100, calls
    assert not failures, "\n".join(sorted(set(failures)))


def test_too_many_form_fields_is_a_documented_400(api_app: tuple[object, str]) -> None:
    """The finding itself: 400 from the multipart parser on the upload routes, and 400 in their documentation."""
    app, key = api_app
    with TestClient(app) as client:  # type: ignore[arg-type]
        doc = client.get("/openapi.json").json()["paths"]
        fields = {f"f{i}": "x" for i in range(10)}
        for path, headers in (("/v1/assets", {"Authorization": f"Bearer {key}"}), ("/v1/lookup", {}),
                              ("/matches/byContent", {})):
            resp = client.post(path, headers=headers, data=fields,
                               files={"file": ("p.png", textured_image(1), "image/png")})
            assert resp.status_code == 400, (path, resp.text)
            assert "400" in doc[path]["post"]["responses"], path


def test_the_budget_stays_bounded(api_schema: schemathesis.BaseSchema) -> None:
    operations = list(api_schema.get_all_operations())
    assert EXAMPLES_PER_OPERATION * len(operations) <= 500, len(operations)
