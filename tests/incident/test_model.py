"""Revocations and switches without a network: validation, the request-path index, expiry
by itself (an injected clock), sweeping, the file store, and the least form of a route."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vigie.incident.audit_events import IncidentEvents
from vigie.incident.containment import forms_of, least_form
from vigie.incident.model import (
    CLOCK_SKEW_SECONDS,
    ContainMode,
    IncidentInputError,
    Revocation,
    RevocationKind,
    check_reason,
    parse_duration,
    parse_time,
)
from vigie.incident.registry import SWEEP_SECONDS, Incidents, UnknownClient
from vigie.incident.state import IncidentState
from vigie.incident.stores import FileStore, MemoryStore, StoreUnavailable
from vigie.policy.model import (
    Action,
    FieldRule,
    Generalization,
    Key,
    MaskStyle,
    ResponseRule,
    Route,
    Selector,
    Unlisted,
)
from vigie.telemetry.metrics import Metrics

LIFETIME = 3600.0


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def incidents(tmp_path: Path, store=None) -> tuple[Incidents, Clock, Metrics]:
    clock, metrics = Clock(), Metrics(process_collectors=False)
    return Incidents(store or MemoryStore(), metrics, IncidentEvents(str(tmp_path / "ev")),
                     lambda: {"gp", "lab"}, max_token_lifetime_seconds=LIFETIME,
                     clock=clock), clock, metrics


def test_times_durations_and_reasons_are_checked() -> None:
    assert parse_time("2026-12-04T15:30:00Z", "t") == parse_time("2026-12-04T15:30:00", "t")
    assert parse_time(12.5, "t") == 12.5
    assert parse_duration("1h30m", "for") == 5400
    for bad in ("yesterday", "", "2026-13-01", None, True):
        with pytest.raises(IncidentInputError, match="ISO 8601"):
            parse_time(bad, "t")
    for bad in ("forever", "0m", "2 weeks", "-1h"):
        with pytest.raises(IncidentInputError):
            parse_duration(bad, "for")
    with pytest.raises(IncidentInputError, match="NIR"):
        check_reason("patient 185057800608491")
    with pytest.raises(IncidentInputError, match="at most"):
        check_reason("x" * 201)


@given(st.text(max_size=60))
def test_a_refused_reason_is_never_echoed_when_it_holds_a_nir(text: str) -> None:
    try:
        check_reason(text + " 185057800608491")
    except IncidentInputError as exc:
        assert "185057800608491" not in str(exc)


def test_a_revocation_covers_older_tokens_and_ends_by_itself(tmp_path: Path) -> None:
    registry, clock, metrics = incidents(tmp_path)

    async def scenario() -> None:
        change = await registry.revoke(RevocationKind.USER, client="gp", principal="psn-m",
                                       jti=None, issued_before=None, reason="INC-1", by="soc")
        revocation = change.entry
        assert change.confirmed
        assert revocation.expires == clock.now + LIFETIME + CLOCK_SKEW_SECONDS
        state = registry.state
        assert state.revoked("gp", "psn-m", None, clock.now - 10, clock.now) is revocation
        assert state.revoked("gp", "psn-m", None, clock.now + CLOCK_SKEW_SECONDS + 1,
                             clock.now) is None  # issued after the cut-off
        assert state.revoked("lab", "psn-m", None, clock.now - 10, clock.now) is None
        assert state.revoked("gp", "psn-m", None, None, clock.now) is revocation  # no iat

        clock.now = revocation.expires  # every covered token has expired by now
        await registry.sync()
        assert registry.state.revoked("gp", "psn-m", None, None, clock.now) is None
        assert metrics.revocations_active.labels(kind="user")._value.get() == 0
        clock.now += SWEEP_SECONDS + 1
        await registry.sync()
        assert (await registry.store.load()) == ([], [])  # swept from the store too

    asyncio.run(scenario())


def test_unknown_clients_and_past_switches_are_refused(tmp_path: Path) -> None:
    registry, clock, _ = incidents(tmp_path)

    async def scenario() -> None:
        with pytest.raises(UnknownClient, match="no policy names 'gp-x'"):
            await registry.revoke(RevocationKind.CLIENT, client="gp-x", principal=None,
                                  jti=None, issued_before=None, reason="x", by="soc")
        with pytest.raises(IncidentInputError, match="already be over"):
            await registry.set_switch("gp", ContainMode.DENY, reason="x", by="soc",
                                      expires=clock.now - 1)
        with pytest.raises(IncidentInputError, match="has expired already"):
            await registry.revoke(RevocationKind.CLIENT, client="gp", principal=None,
                                  jti=None, issued_before=clock.now - LIFETIME - 60,
                                  reason="x", by="soc")
        with pytest.raises(IncidentInputError, match="30 days"):
            await registry.revoke(RevocationKind.CLIENT, client="gp", principal=None,
                                  jti=None, issued_before=clock.now + 31 * 86400,
                                  reason="x", by="soc")
        switch = (await registry.set_switch("*", ContainMode.MINIMAL, reason="x", by="soc",
                                            expires=clock.now + 60)).entry
        assert registry.state.switches("gp", clock.now) == (switch,)
        assert registry.state.switches("gp", clock.now + 60) == ()

    asyncio.run(scenario())


def test_the_file_store_keeps_entries_and_refuses_a_damaged_file(tmp_path: Path) -> None:
    path = tmp_path / "incident.json"
    registry, clock, _ = incidents(tmp_path, FileStore(path))

    async def scenario() -> None:
        await registry.revoke(RevocationKind.JTI, client=None, principal=None, jti="t-1",
                              issued_before=None, reason="x", by="soc")
        again, _, _ = incidents(tmp_path, FileStore(path))
        await again.sync()
        assert again.state.revoked("gp", "psn-any", "t-1", None, clock.now) is not None
        path.write_text("{not json")
        with pytest.raises(StoreUnavailable):
            await FileStore(path).load()
        await again.sync()  # a damaged file keeps the last known state
        assert again.state.revoked("gp", "psn-any", "t-1", None, clock.now) is not None

    asyncio.run(scenario())


def rule(name: str, action: Action, **more: object) -> FieldRule:
    return FieldRule(Selector(name, (Key(name),)), action, **more)  # type: ignore[arg-type]


ROUTE = Route(name="read", methods=frozenset({"GET"}), path="/p/{id}", segments=("p", None),
              params=("id",), response=ResponseRule(
                  records=Selector("$", ()), unlisted=Unlisted.KEEP, fields=(
                      rule("id", Action.KEEP), rule("nir", Action.KEEP),
                      rule("last_name", Action.MASK, mask=MaskStyle.LAST2),
                      rule("birth_date", Action.GENERALIZE,
                           generalize=Generalization.YEAR),
                      rule("phone", Action.DROP))))


def test_the_least_form_pseudonymizes_kept_fields_and_keeps_the_reference() -> None:
    least = least_form(ROUTE, can_pseudonymize=True)
    assert least_form(ROUTE, can_pseudonymize=True) is least  # computed once
    assert forms_of(ROUTE) == {"id": "clear", "nir": "clear", "last_name": "masked",
                               "birth_date": "generalized", "*": "clear"}
    assert forms_of(least) == {"id": "clear", "nir": "pseudonym", "last_name": "masked",
                               "birth_date": "generalized"}
    assert least.response is not None and least.response.unlisted is Unlisted.DROP
    masks = [r.mask for r in least.response.fields if r.action is Action.MASK]
    assert masks == [MaskStyle.ALL]
    without_key = least_form(ROUTE, can_pseudonymize=False)
    assert forms_of(without_key) == {"id": "clear", "last_name": "masked",
                                     "birth_date": "generalized"}


REVOCATION = st.builds(
    lambda kind, client, principal, jti, before, ttl: Revocation(
        id=f"rev_{before}_{ttl}_{jti}", kind=kind, client=client if kind is not
        RevocationKind.JTI or client != "any" else None,
        principal=principal if kind is RevocationKind.USER else None,
        jti=jti if kind is RevocationKind.JTI else None, issued_before=float(before),
        expires=float(before + ttl), reason="r", by="b", created=0.0),
    st.sampled_from(list(RevocationKind)), st.sampled_from(["gp", "lab", "any"]),
    st.sampled_from(["psn-a", "psn-b"]), st.sampled_from(["j1", "j2"]),
    st.integers(0, 100), st.integers(1, 100))


@given(st.lists(REVOCATION, max_size=8), st.sampled_from(["gp", "lab"]),
       st.sampled_from(["psn-a", "psn-b"]), st.sampled_from(["j1", "j2", None]),
       st.one_of(st.none(), st.integers(-50, 150).map(float)), st.integers(0, 200))
def test_the_index_agrees_with_reading_every_revocation(revocations, client, principal, jti,
                                                        issued_at, now) -> None:
    def covers(r: Revocation) -> bool:
        if r.expires <= now:
            return False
        if r.kind is RevocationKind.JTI:
            return r.jti == jti and r.client in (None, client)
        target = r.client == client and (r.kind is RevocationKind.CLIENT
                                         or r.principal == principal)
        return target and (issued_at is None
                           or issued_at < r.issued_before + CLOCK_SKEW_SECONDS)

    state = IncidentState.of(revocations, [])
    found = state.revoked(client, principal, jti, issued_at, float(now))
    expected = [r for r in state.revocations.values() if covers(r)]
    assert (found is not None) == bool(expected)
    assert found is None or found in expected
