"""A durable outbox for side effects that must happen (STYLE habit 4, made to survive a broker
outage).

A service that changes state and needs a task to follow calls :func:`services.outbox_enqueue`
inside its transaction: the entry is written with the state change or not at all. After the
commit the entry is published to the broker; if the broker is unreachable the request still
succeeds and the entry stays pending, and beat's ``outbox_sweep`` publishes it again once the
broker is back. A consumer's success marks its entry done (by the message's task id), so an
entry is published until it is done, and consumers must be idempotent (a redelivered or
republished message changes nothing the first run did).
"""
