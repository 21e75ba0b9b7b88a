"""Webhooks: an account's endpoints are told when its batches change state.

    events.py      the event types and the payload every receiver gets
    signing.py     signing secrets (``whsec_...``), the Standard Webhooks signature, and the
                   sealing of secrets at rest
    addresses.py   which URLs may be called: http(s) only, and the private-address guard of
                   SMTP applied to every address the host resolves to
    repository.py  all SQL over ``webhook_endpoints`` and ``webhook_deliveries``
    service.py     the use cases: register, list, remove, the delivery log, ``record_event``
    delivery.py    one HTTP attempt: pinned to the checked address, short timeout, no redirect
    tasks.py       the delivery job, its retries with exponential backoff, and the sweep that
                   re-defers deliveries a dead process left pending

A delivery is written in the transaction of the state change that causes it, and its job is
deferred in that transaction too, so an event exists if and only if the change committed.
Delivery is at least once: the ``webhook-id`` header is the same on every attempt, the
receiver's idempotency key. The package sits below ``batches`` (which calls ``record_event``
at its transitions) and above ``accounts`` and ``jobs``.
"""
