"""The monitors' one way in: a subscription, whether this project serves its model or another engine does.

:func:`monitor_for` gives the :class:`~utils.monitoring.monitor.DeploymentMonitor` of a subscription. A local
deployment's is the usual one (its model from the registry). Another engine's reads the records logged under the
subscription and its reference data; its model is the engine itself, scored through the subscription's URL
(:class:`utils.remote.RemoteModel`) for the checks that need new predictions (fairness's perturbation check and
debiased companion, the drift monitor's accuracy estimate without labels, quality on feedback that names no
transaction). Without a URL those checks are left out, and feedback must name the transaction it labels.
:func:`explain_logged` explains a logged decision of another engine through its URL.
"""

from __future__ import annotations

import os

import pandas as pd
from sqlalchemy.engine import Engine

from utils import config, datamart
from utils.data import FEATURES, load_credit_csv
from utils.deployment import Deployment
from utils.explain import Explanation
from utils.monitoring.declared import DeclaredMonitor
from utils.monitoring.monitor import DeploymentMonitor
from utils.remote import RemoteModel
from utils.subscriptions import Subscription, SubscriptionError, get_subscription


def remote_model(subscription: Subscription) -> RemoteModel | None:
    """The subscription's engine as a model scored through its URL (None: it has no URL)."""
    if subscription.scoring_url is None:
        return None
    return RemoteModel(
        subscription.scoring_url,
        columns=FEATURES,
        classes=subscription.classes,
        probability_field=subscription.probability_field,
    )


def _stand_in(subscription: Subscription) -> Deployment:
    """The record a monitor shows for a subscription: its name, its engine (in place of a space), its model."""
    return Deployment(
        deployment_id=subscription.subscription_id,
        name=subscription.name,
        space=subscription.engine,
        model_id=subscription.model_id,
        status="external",
        created_at=subscription.created_at,
        updated_at=subscription.created_at,
    )


def monitor_for(
    subscription_id: str, *, engine: Engine | None = None, work: str | os.PathLike | None = None, **options
) -> DeploymentMonitor:
    """The monitors of a subscription (or of a deployment, by its id); ``options`` as for
    :class:`DeploymentMonitor` (thresholds, sample size, seed).

    A subscription with a declared schema gets a :class:`~utils.monitoring.declared.DeclaredMonitor`: the same
    monitors on its declared columns, classes and groups.

    Raises:
        SubscriptionError: no such subscription, or reference data that do not fit its declared schema.
    """
    engine = engine or datamart.connect(work=work)
    subscription = get_subscription(subscription_id, engine=engine)
    options.setdefault("attributes", subscription.protected_attributes)
    if subscription.engine == "local":
        return DeploymentMonitor(subscription.deployment_id, engine=engine, work=work, **options)
    if not subscription.credit:
        options["attributes"] = tuple(a for a in options["attributes"] if a in subscription.groups)
        return DeclaredMonitor(subscription, _stand_in(subscription), engine=engine, work=work, **options)
    layout = config.layout(work)
    reference = load_credit_csv(layout.require(subscription.reference))
    return DeploymentMonitor(
        subscription.subscription_id,
        engine=engine,
        work=layout.root,
        reference=reference,
        deployment=_stand_in(subscription),
        model=remote_model(subscription),
        **options,
    )


def explain_logged(monitor: DeploymentMonitor, transaction_id: str, *, seed: int = 0) -> Explanation:
    """shap contributions to a logged decision of a subscription's engine, through its scoring URL
    (:func:`utils.explain_remote.remote_contributions`).

    Raises:
        SubscriptionError: the subscription has no scoring URL, so nothing can ask its model again.
        KeyError: no such logged transaction.
    """
    if isinstance(monitor, DeclaredMonitor):
        monitor.explain(transaction_id)  # refuses, saying why
    if not isinstance(monitor.model, RemoteModel):
        name = monitor.deployment.name
        raise SubscriptionError(
            f"subscription {name!r} has no scoring URL: its decisions cannot be explained, since an explanation "
            "asks the model about changed records",
            field="scoring_url",
        )
    from utils.explain_remote import remote_contributions  # shap is slow to import: only when explaining

    stored = datamart.read_transaction(monitor.engine, transaction_id)
    record = pd.DataFrame([stored[list(FEATURES)].to_dict()])
    explanation = remote_contributions(monitor.model, record, monitor.reference, seed=seed)
    explanation.transaction_id = transaction_id
    return explanation
