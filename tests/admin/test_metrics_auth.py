"""`/metrics` behind the admin token or a scrape token; the anomaly score in coarse bands."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client import CollectorRegistry

from support.configs import minimal_config
from support.harness import Harness, Keys
from vigie.config import load_settings
from vigie.errors import ConfigError
from vigie.telemetry.metrics import Metrics, anomaly_band

POLICY = "client: app\nroutes:\n  - name: items\n    methods: [GET]\n    path: /items/{id}\n"
ADMIN = "admin-token-0123456789abcdef"
SCRAPE = "scrape-token-0123456789abcdef"


@pytest.fixture(scope="module")
def keys() -> Keys:
    return Keys()


def _harness(tmp: Path, keys: Keys, metrics_auth: str) -> Harness:
    (tmp / "admin.token").write_text(ADMIN + "\n")
    (tmp / "scrape.token").write_text(SCRAPE)
    config = (f"admin: {{host: 127.0.0.1, token_file: {tmp / 'admin.token'}, "
              f"scrape_token_file: {tmp / 'scrape.token'}, metrics_auth: {metrics_auth}}}\n")
    return Harness(tmp, {"app.yaml": POLICY}, keys=keys, config=config)


@pytest.fixture(scope="module")
def scrape_protected(tmp_path_factory: pytest.TempPathFactory, keys: Keys) -> Iterator[Harness]:
    with _harness(tmp_path_factory.mktemp("scrape"), keys, "scrape") as h:
        yield h


def _scrape(h: Harness, token: str | None) -> httpx.Response:
    headers = {} if token is None else {"Authorization": f"Bearer {token}"}
    return httpx.get(f"{h.admin_url}/metrics", headers=headers, timeout=5)


def test_a_scrape_token_opens_metrics_but_not_the_quarantine_api(
        scrape_protected: Harness) -> None:
    h = scrape_protected
    assert _scrape(h, SCRAPE).status_code == 200
    assert "vigie_requests_total" in _scrape(h, SCRAPE).text
    assert _scrape(h, ADMIN).status_code == 200  # the admin token reads metrics too
    for token in (None, "wrong-token-0123456789", SCRAPE + "x", f"{SCRAPE[:-1]}"):
        refused = _scrape(h, token)
        assert refused.status_code == 401 and "vigie_" not in refused.text
        assert refused.headers["www-authenticate"].startswith("Bearer")
    quarantine = httpx.get(f"{h.admin_url}/quarantine",
                           headers={"Authorization": f"Bearer {SCRAPE}"}, timeout=5)
    assert quarantine.status_code == 401
    for probe in ("/healthz", "/readyz"):  # kubelet probes carry no token
        assert httpx.get(f"{h.admin_url}{probe}", timeout=5).status_code == 200


def test_metrics_auth_admin_accepts_only_the_admin_token(tmp_path: Path, keys: Keys) -> None:
    with _harness(tmp_path, keys, "admin") as h:
        assert _scrape(h, ADMIN).status_code == 200
        assert _scrape(h, SCRAPE).status_code == 401
        assert _scrape(h, None).status_code == 401




@pytest.mark.parametrize(("admin", "key"), [
    ("{metrics_auth: scrape}", "admin.scrape_token_file"),
    ("{metrics_auth: admin}", "admin.token_file"),
    ("{metrics_auth: everyone}", "admin.metrics_auth"),
])
def test_an_incomplete_metrics_auth_stops_start_up(tmp_path: Path, admin: str,
                                                   key: str) -> None:
    with pytest.raises(ConfigError, match=rf"\(key '{key}'\)"):
        load_settings(minimal_config(tmp_path, f"admin: {admin}\n"), {})


def test_the_anomaly_score_is_exported_in_bands_only() -> None:
    metrics = Metrics(CollectorRegistry(), process_collectors=False)
    gauge = metrics.anomaly_score.labels(client="app")
    for score, band in ((0.0, 0.0), (0.24, 0.0), (0.25, 0.25), (0.49, 0.25), (0.5, 0.5),
                        (0.94, 0.5), (0.999, 0.5), (1.0, 1.0)):
        gauge.set(score)
        assert metrics.registry.get_sample_value("vigie_anomaly_score",
                                                 {"client": "app"}) == band, score
        assert anomaly_band(score) == band
