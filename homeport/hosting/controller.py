"""The endpoint controller: desired state (endpoint → configuration) reconciled into live instances.

Each Create/Update/Delete/capacity change runs in its own thread, serialised per endpoint by a
lock; a monitor thread health-checks every instance and replaces the ones that crash or stop
answering /ping (they get no traffic meanwhile). The router only ever sees instances that
passed /ping. Every status change is one store transaction.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from homeport.config import Settings
from homeport.hosting.deployment import (
    LOG_GROUP,
    DeployError,
    Deployment,
    InstanceFactory,
    VariantPlan,
    plan_variants,
)
from homeport.hosting.instance import ServingInstance
from homeport.hosting.model_data import ModelDataCache
from homeport.hosting.router import Router
from homeport.hosting.states import EndpointStatus, check_transition
from homeport.images.source import ImageSource
from homeport.store.database import Store
from homeport.store.records import EndpointRecord

log = logging.getLogger(__name__)

FAILED_PINGS_BEFORE_REPLACING = 3
DRAIN_TIMEOUT = 60.0


class EndpointController:
    def __init__(
        self,
        settings: Settings,
        store: Store,
        images: ImageSource,
        model_data: ModelDataCache,
        factory: InstanceFactory,
        router: Router,
    ) -> None:
        self.settings = settings
        self.store = store
        self.images = images
        self.model_data = model_data
        self.factory = factory
        self.router = router
        self._live: dict[str, Deployment] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()
        self._replacing: set[str] = set()
        self._stopped = threading.Event()
        self._monitor: threading.Thread | None = None

    # -- bookkeeping -------------------------------------------------------------------------

    def _lock(self, key: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(key, threading.Lock())

    def _set_status(
        self, name: str, to: EndpointStatus, mutate: Callable[[EndpointRecord], None] | None = None
    ) -> EndpointRecord:
        def apply(rec: EndpointRecord) -> None:
            if rec.status != to:
                check_transition(rec.status, to)
            rec.status = to.value
            rec.last_modified_time = time.time()
            if mutate is not None:
                mutate(rec)

        return self.store.update_endpoint(name, apply)

    def _fail(self, name: str, to: EndpointStatus, reason: str) -> None:
        current = self.store.get_endpoint(name)
        if current is None or current.status == EndpointStatus.DELETING:
            return  # deleted meanwhile: nothing to report on

        def record(rec: EndpointRecord) -> None:
            rec.failure_reason = reason[:1024]
            rec.pending_config_name = None

        self._set_status(name, to, record)

    def _background(self, name: str, target: Callable[[], None]) -> None:
        def run() -> None:
            with self._lock(name.lower()):
                try:
                    target()
                except Exception:
                    log.exception("endpoint %s: operation failed", name)

        threading.Thread(target=run, name=f"endpoint-{name}", daemon=True).start()

    def live(self, name: str) -> Deployment | None:
        with self._guard:
            return self._live.get(name.lower())

    # -- building deployments ------------------------------------------------------------------

    def _deploy(self, endpoint: str, config_name: str) -> Deployment:
        """Resolve a configuration and start all its instances; raise DeployError if any fails."""
        config = self.store.get_endpoint_config(config_name)
        if config is None:
            raise DeployError(f'Could not find endpoint configuration "{config_name}".')
        models: dict[str, dict[str, Any]] = {}
        for variant in config.spec["ProductionVariants"]:
            model = self.store.get_model(variant["ModelName"])
            if model is not None:
                models[variant["ModelName"]] = model.spec
        deployment = Deployment(endpoint=endpoint, config_name=config.name, variants={})
        try:
            deployment.variants = plan_variants(
                config.spec, models, self.images, self.model_data, deployment.holds
            )
            for plan in deployment.variants.values():
                plan.instances.extend(self.factory.start_many(deployment, plan, plan.desired_count))
        except BaseException:
            self._tear_down(deployment)
            raise
        return deployment

    def _tear_down(self, deployment: Deployment, drain: bool = False) -> None:
        instances = deployment.all_instances()
        if drain:
            deadline = time.monotonic() + DRAIN_TIMEOUT
            while time.monotonic() < deadline and any(self.router.outstanding(i.key) for i in instances):
                time.sleep(0.05)
        threads = [threading.Thread(target=self.factory.stop, args=(i,), daemon=True) for i in instances]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        deployment.holds.close()

    def _activate(self, deployment: Deployment) -> Deployment | None:
        """Route traffic to ``deployment``; returns the deployment it replaced."""
        with self._guard:
            previous = self._live.get(deployment.key)
            self._live[deployment.key] = deployment
        self.router.publish(deployment.route())
        return previous

    # -- operations (called by the API in request threads) -------------------------------------

    def create(self, name: str) -> None:
        def run() -> None:
            rec = self.store.get_endpoint(name)
            if rec is None:
                return
            self.factory.logs.reopen(LOG_GROUP, rec.name)
            try:
                deployment = self._deploy(rec.name, rec.config_name)
            except DeployError as exc:
                self._fail(name, EndpointStatus.FAILED, str(exc))
                return
            current = self.store.get_endpoint(name)
            if current is None or current.status == EndpointStatus.DELETING or self._stopped.is_set():
                self._tear_down(deployment)  # deleted meanwhile
                return
            self._activate(deployment)

            def done(r: EndpointRecord) -> None:
                r.variants = deployment.summaries()
                r.failure_reason = None

            self._set_status(name, EndpointStatus.IN_SERVICE, done)

        self._background(name, run)

    def update(self, name: str, config_name: str) -> None:
        """Blue/green: the new configuration's instances pass /ping before traffic moves."""

        def run() -> None:
            rec = self.store.get_endpoint(name)
            if rec is None:
                return
            try:
                deployment = self._deploy(rec.name, config_name)
            except DeployError as exc:
                reason = f"Update of endpoint failed, the previous configuration keeps serving: {exc}"

                def rolled_back(r: EndpointRecord) -> None:
                    r.failure_reason = reason[:1024]
                    r.pending_config_name = None

                had_live = self.live(name) is not None
                self._set_status(
                    name, EndpointStatus.IN_SERVICE if had_live else EndpointStatus.FAILED, rolled_back
                )
                return
            previous = self._activate(deployment)

            def switched(r: EndpointRecord) -> None:
                r.config_name = deployment.config_name
                r.pending_config_name = None
                r.variants = deployment.summaries()
                r.failure_reason = None

            try:
                self._set_status(name, EndpointStatus.IN_SERVICE, switched)
            finally:
                if previous is not None:
                    self._tear_down(previous, drain=True)  # in-flight requests finish first

        self._background(name, run)

    def update_weights_and_capacities(self, name: str, desired: list[dict[str, Any]]) -> None:
        def run() -> None:
            deployment = self.live(name)
            try:
                if deployment is None:
                    raise DeployError("the endpoint has no live instances")
                for change in desired:
                    plan = deployment.variants[change["VariantName"]]
                    if "DesiredWeight" in change:
                        plan.weight = float(change["DesiredWeight"])
                    if "DesiredInstanceCount" in change:
                        self._scale(deployment, plan, int(change["DesiredInstanceCount"]))
                self.router.publish(deployment.route())
                summaries = deployment.summaries()

                def done(r: EndpointRecord) -> None:
                    r.variants = summaries
                    r.failure_reason = None

                self._set_status(name, EndpointStatus.IN_SERVICE, done)
            except DeployError as exc:
                self._fail(name, EndpointStatus.IN_SERVICE, str(exc))

        self._background(name, run)

    def _scale(self, deployment: Deployment, plan: VariantPlan, count: int) -> None:
        plan.desired_count = count
        current = len(plan.instances)
        if count > current:
            new = self.factory.start_many(deployment, plan, count - current)
            with deployment.lock:
                plan.instances.extend(new)
        elif count < current:
            with deployment.lock:
                removed = plan.instances[count:]
                del plan.instances[count:]
            self.router.publish(deployment.route())
            for instance in removed:
                self._drain_and_stop(instance)

    def _drain_and_stop(self, instance: ServingInstance) -> None:
        deadline = time.monotonic() + DRAIN_TIMEOUT
        while self.router.outstanding(instance.key) and time.monotonic() < deadline:
            time.sleep(0.05)
        self.factory.stop(instance)

    def delete(self, name: str) -> None:
        """Withdraw traffic now; stop every process, then forget the endpoint."""
        key = name.lower()
        self.router.withdraw(key)
        with self._guard:
            deployment = self._live.pop(key, None)

        def run() -> None:
            # An operation that was running when the delete arrived may have activated a
            # deployment since: take whatever is live now, under the endpoint's lock.
            self.router.withdraw(key)
            with self._guard:
                late = self._live.pop(key, None)
            for stale in {id(d): d for d in (deployment, late) if d is not None}.values():
                self._tear_down(stale)
            rec = self.store.get_endpoint(name)
            if rec is not None:
                self.store.delete_all_tags(rec.arn)
            self.store.delete_endpoint(name)
            self.factory.logs.close_stream(LOG_GROUP, name)  # `homeport logs --endpoint -f` ends here

        self._background(name, run)

    # -- start-up and health ---------------------------------------------------------------------

    def restore(self) -> None:
        """After a restart: bring back endpoints that were serving; finish deletes."""
        active = [
            s.value for s in EndpointStatus if s not in (EndpointStatus.FAILED, EndpointStatus.OUT_OF_SERVICE)
        ]
        for rec in self.store.endpoints_in(active):
            status = EndpointStatus(rec.status)
            if status is EndpointStatus.DELETING:
                self.store.delete_all_tags(rec.arn)
                self.store.delete_endpoint(rec.name)
            elif status is EndpointStatus.CREATING:
                self.create(rec.name)
            else:
                target = rec.pending_config_name or rec.config_name
                if status is not EndpointStatus.SYSTEM_UPDATING:
                    self._set_status(rec.name, EndpointStatus.SYSTEM_UPDATING)
                self._restore_one(rec.name, target)

    def _restore_one(self, name: str, config_name: str) -> None:
        def run() -> None:
            try:
                deployment = self._deploy(name, config_name)
            except DeployError as exc:
                self._fail(name, EndpointStatus.FAILED, f"Could not restore after a restart: {exc}")
                return
            self._activate(deployment)

            def done(r: EndpointRecord) -> None:
                r.config_name = deployment.config_name
                r.pending_config_name = None
                r.variants = deployment.summaries()

            self._set_status(name, EndpointStatus.IN_SERVICE, done)

        self._background(name, run)

    def _record_variants(self, deployment: Deployment) -> None:
        summaries = deployment.summaries()

        def record(rec: EndpointRecord) -> None:
            rec.variants = summaries

        self.store.update_endpoint(deployment.endpoint, record)

    def start_monitor(self) -> None:
        self._monitor = threading.Thread(target=self._watch, name="endpoint-monitor", daemon=True)
        self._monitor.start()

    def shutdown(self) -> None:
        self._stopped.set()

    def _watch(self) -> None:
        while not self._stopped.wait(self.settings.health_check_seconds):
            with self._guard:
                deployments = list(self._live.values())
            for deployment in deployments:
                for plan in list(deployment.variants.values()):
                    for instance in list(plan.instances):
                        try:
                            self._check(deployment, plan, instance)
                        except Exception:
                            log.exception("health check of %s failed", instance.key)

    def _check(self, deployment: Deployment, plan: VariantPlan, instance: ServingInstance) -> None:
        if instance.key in self._replacing:
            return
        healthy = instance.alive() and instance.ping()
        if healthy:
            plan.failures.pop(instance.key, None)
            return
        failures = plan.failures.get(instance.key, 0) + 1
        plan.failures[instance.key] = failures
        if instance.alive() and failures < FAILED_PINGS_BEFORE_REPLACING:
            return
        self._replacing.add(instance.key)
        log.warning("endpoint %s: replacing unhealthy instance %s", deployment.endpoint, instance.key)
        with deployment.lock:
            if instance in plan.instances:
                plan.instances.remove(instance)
        if self.live(deployment.endpoint) is deployment:
            self.router.publish(deployment.route())  # no traffic to it from now on
        threading.Thread(
            target=self._replace, args=(deployment, plan, instance), name="instance-replace", daemon=True
        ).start()

    def _replace(self, deployment: Deployment, plan: VariantPlan, old: ServingInstance) -> None:
        try:
            self.factory.stop(old, grace=min(5.0, self.factory.stop_grace))
            plan.failures.pop(old.key, None)
            while not self._stopped.is_set() and self.live(deployment.endpoint) is deployment:
                try:
                    new = self.factory.start(deployment, plan)
                except DeployError as exc:
                    log.warning("endpoint %s: replacement failed: %s", deployment.endpoint, exc)
                    time.sleep(2.0)
                    continue
                if self.live(deployment.endpoint) is not deployment:
                    self.factory.stop(new)
                    return
                with deployment.lock:
                    plan.instances.append(new)
                self.router.publish(deployment.route())
                self._record_variants(deployment)
                return
        finally:
            self._replacing.discard(old.key)
