"""Limits, budgets and route plans of a policy, cached per policy and route object.

Request-path caches keyed by `id()` (issue 14 replaces them with artefacts compiled at
policy reload, carried on the Grant); kept verbatim here until then.
"""

from __future__ import annotations

from dataclasses import dataclass

from vigie.guard.limits import Budget
from vigie.guard.reservation import RoutePlan, plan_route
from vigie.policy.model import ClientPolicy, Route
from vigie.rates import Limits


@dataclass(frozen=True, slots=True)
class _Compiled:
    policy: ClientPolicy
    limits: Limits
    budget: Budget
    client_limits: Limits | None
    client_budget: Budget | None


class Compiler:
    def __init__(self, defaults: Limits) -> None:
        self.defaults = defaults  # settings.limits: what a policy's limits inherit
        self._compiled: dict[int, _Compiled] = {}
        self._plans: dict[int, tuple[Route, RoutePlan]] = {}

    def _compile(self, policy: ClientPolicy) -> _Compiled:
        """Limits and budgets of a policy, computed once per policy object (reloads
        bring new objects; hashing frozen dataclasses per request costs too much)."""
        found = self._compiled.get(id(policy))
        if found is not None and found.policy is policy:
            return found
        if len(self._compiled) > 4096:
            self._compiled.clear()
        limits = policy.limits.inherit(self.defaults)
        client_limits = policy.client_limits
        found = _Compiled(policy, limits, Budget.of(limits), client_limits,
                          None if client_limits is None else Budget.of(client_limits))
        self._compiled[id(policy)] = found
        return found

    def _plan(self, route: Route) -> RoutePlan:
        found = self._plans.get(id(route))
        if found is not None and found[0] is route:
            return found[1]
        if len(self._plans) > 4096:
            self._plans.clear()
        plan = plan_route(route)
        self._plans[id(route)] = (route, plan)
        return plan
