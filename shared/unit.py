"""The unit of work: one transaction holding a message's state change, its inbox row and its events.

    async with rt.unit(consumer="routing.tickets", event=ev, within=batch) as u:
        if u.duplicate:
            return
        await store.save_x(u.conn, ...)          # the transaction's connection
        u.emit(ticket_no, SomeEvent(...))        # an outbox row, staged
        u.after_commit(metrics.X.inc)            # once the transaction has committed

A :class:`Tx` is the transaction a unit runs in. ``rt.unit()`` with no ``within`` opens its own Tx
(and commits it when the block ends); ``within=`` hands it one explicitly: a batch's Tx (many
deliveries, one transaction: ``shared.batching``) or another unit (a nested use case joins its
caller's transaction, and knows it does). Nothing is looked up in a context variable.

A Tx *collects* what every unit in it stages — inbox ids, per-ticket ``event_seq`` increments,
outbox rows, a store's insert rows (:meth:`Unit.stage`) — and writes each kind as **one multi-row
statement** (``unnest``) when it flushes, just before the commit. So a batch of 32 deliveries costs
a handful of statements beyond the handlers' own reads and updates, not four per message.

Inbox claims: alone, a unit claims its message with one ``INSERT … ON CONFLICT DO NOTHING`` at once
(a concurrent duplicate blocks on the key until the first commits). In a batch the Tx first reads,
in one statement per consumer, which of the batch's message ids that consumer already processed, and
stages the rest; at the flush they are inserted together, and if any was claimed meanwhile (a replica
handled a redelivered copy) the flush raises :class:`ClaimLost`, the batch rolls back and each message
is handled again alone. A duplicate inside the same batch is seen by the Tx itself.
"""

from __future__ import annotations

import contextlib
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import asyncpg

from shared.envelope import CloudEvent
from shared.events import EventData
from shared.masking import mask_deep

log = logging.getLogger(__name__)

Writer = Callable[[asyncpg.Connection, list[Any]], Awaitable[None]]
EmittedHook = Callable[[asyncpg.Connection, list[CloudEvent]], Awaitable[None]]


class ClaimLost(RuntimeError):
    """A staged inbox id was claimed by another transaction before this one flushed: roll back, retry alone."""


class Tx:
    """One transaction's staged writes. Built by ``Runtime.transaction()``; units run in it."""

    def __init__(self, conn: asyncpg.Connection, service: str, *, on_emitted: EmittedHook | None = None,
                 batch_ids: Sequence[str | None] = (), lease_s: float = 0.0) -> None:
        self.conn, self.service, self.on_emitted = conn, service, on_emitted
        self.lease_s = lease_s  # > 0: the committing process publishes the events (``leased``) itself
        self.leased: list[dict[str, Any]] = []  # the outbox rows written leased: what to hand the relay
        self.batch_ids = {m for m in batch_ids if m}  # message ids of the batch's deliveries (may prefetch)
        self._known: dict[str, set[str]] = {}  # consumer -> batch ids it had processed before this Tx
        self._seen: set[tuple[str, str]] = set()  # claimed in this Tx
        self._claims: list[tuple[str, str]] = []  # staged inbox rows
        self._events: list[tuple[str, str, EventData, datetime | None]] = []  # (ticket_no, id, event, time)
        self._staged: dict[Writer, list[Any]] = {}
        self._after: list[Callable[[], None]] = []
        self.envelopes: list[CloudEvent] = []  # what the flush wrote to the outbox
        self.memo: dict[Any, Any] = {}  # a use case's rows as this transaction holds them (a batch shares it)

    async def claim(self, consumer: str, message_id: str) -> bool:
        """True the first time ``consumer`` sees ``message_id``; False for a duplicate."""
        key = (consumer, message_id)
        if key in self._seen:
            return False
        if message_id in self.batch_ids:
            if message_id in await self.processed(consumer):
                return False
            self._claims.append(key)
        elif not await self.conn.fetchval(
            f"INSERT INTO {self.service}.inbox (consumer, message_id) VALUES ($1, $2)"
            " ON CONFLICT DO NOTHING RETURNING 1", consumer, message_id,
        ):
            return False
        self._seen.add(key)
        return True

    async def processed(self, consumer: str) -> set[str]:
        """The batch's message ids ``consumer`` had processed before this transaction (read once, one
        statement; its claims reuse it): for a ``prepare`` that must leave those messages out."""
        known = self._known.get(consumer)
        if known is None:
            known = self._known[consumer] = await self._prefetch(consumer) if self.batch_ids else set()
        return known

    async def _prefetch(self, consumer: str) -> set[str]:
        rows = await self.conn.fetch(
            # driven by the batch's ids, one primary-key probe each, whatever the statistics say: the LIMIT
            # keeps the probe a nested loop. `message_id = ANY(...)` let a plan made on stale statistics, and
            # a plain join the generic plan made on the empty table, read every id the consumer had ever
            # processed (5 ms a batch at 12,000)
            f"SELECT x.message_id FROM unnest($2::text[]) AS m(id), LATERAL (SELECT i.message_id"
            f" FROM {self.service}.inbox i WHERE i.consumer = $1 AND i.message_id = m.id LIMIT 1) x",
            consumer, list(self.batch_ids))
        return {r["message_id"] for r in rows}

    def emit(self, ticket_no: str, event: EventData, *, time: datetime | None = None) -> str:
        """Stage ``event`` about ``ticket_no``; returns the CloudEvent id it will carry."""
        event_id = str(uuid.uuid4())
        self._events.append((ticket_no, event_id, event, time))
        return event_id

    def stage(self, writer: Writer, row: Any) -> None:
        """Stage ``row`` for ``writer(conn, rows)``, called once at the flush with every row staged for it."""
        self._staged.setdefault(writer, []).append(row)

    def after_commit(self, fn: Callable[[], None]) -> None:
        self._after.append(fn)

    async def flush(self) -> None:
        """Write the staged rows, one statement per kind (called by the Tx's owner before commit): a store's
        rows first (the state the events announce: intake's new tickets before the timeline rows of their
        ``ticket.created``), then the events, then the inbox ids."""
        await self._write_staged()
        if self._events:
            await self._write_events()
            await self._write_staged()  # anything the service's own write of its events staged
        if self._claims:
            claims, self._claims = self._claims, []
            got = await self.conn.fetchval(
                f"WITH ins AS (INSERT INTO {self.service}.inbox (consumer, message_id)"
                " SELECT * FROM unnest($1::text[], $2::text[]) ON CONFLICT DO NOTHING RETURNING 1)"
                " SELECT count(*) FROM ins", [c for c, _ in claims], [m for _, m in claims])
            if got != len(claims):
                raise ClaimLost(f"{len(claims) - got} of {len(claims)} inbox ids were claimed meanwhile")

    async def _write_staged(self) -> None:
        while self._staged:  # a writer may stage more (rarely): keep going until all is written
            staged, self._staged = self._staged, {}
            for writer, rows in staged.items():
                await writer(self.conn, rows)

    async def _write_events(self) -> None:
        """The staged events in one statement: each ticket's ``event_seq`` row moves on by its events (in
        one lock order), and the outbox rows are written with their ``seq`` spliced into the body the
        envelope serialised around it (``SEQ_MARK``) — byte for byte what the envelope with that ``seq``
        would serialise to, without a round trip to learn the numbers first."""
        events, self._events = self._events, []
        counts: dict[str, int] = {}
        index: list[int] = []  # each event's place among its ticket's events of this flush (1-based)
        for ticket_no, *_ in events:
            counts[ticket_no] = counts.get(ticket_no, 0) + 1
            index.append(counts[ticket_no])
        tickets = sorted(counts)  # one lock order for the per-ticket sequence rows
        envelopes = [envelope(self.service, ticket_no, SEQ_MARK, event_id, event, time)
                     for ticket_no, event_id, event, time in events]
        heads, tails = [], []
        for e in envelopes:
            head, mark, tail = e.to_bytes().partition(SEQ_TOKEN)
            if not mark or SEQ_TOKEN in tail:  # cannot happen (a string escapes its quotes): a bug, so a
                # RuntimeError (retried), never a ValueError (the message's fault: dead-lettered)
                raise RuntimeError(f"event {e.id}: its body does not hold the seq mark exactly once")
            heads.append(head + b'"seq":')
            tails.append(tail)
        # leased (lease_s > 0) until the committing process has published them (``Relay.hand``), or the
        # lease ends; without a lease the relay publishes them (NOTIFY)
        rows = await self.conn.fetch(
            f"WITH s AS (INSERT INTO {self.service}.event_seq AS q (ticket_no, seq)"
            "   SELECT * FROM unnest($1::text[], $2::int[])"
            "   ON CONFLICT (ticket_no) DO UPDATE SET seq = q.seq + EXCLUDED.seq RETURNING ticket_no, seq)"
            f" INSERT INTO {self.service}.outbox (event_id, routing_key, ticket_no, body, lease_until)"
            " SELECT u.e, u.k, u.t, u.h || convert_to((s.seq - u.c + u.i)::text, 'UTF8') || u.b,"
            "   CASE WHEN $10::float8 > 0 THEN clock_timestamp() + make_interval(secs => $10::float8) END"
            " FROM unnest($3::uuid[], $4::text[], $5::text[], $6::bytea[], $7::bytea[], $8::int[], $9::int[])"
            "   WITH ORDINALITY AS u(e, k, t, h, b, i, c, n)"
            " JOIN s ON s.ticket_no = u.t ORDER BY u.n"  # ids in staging order: the relay publishes by id
            " RETURNING id, event_id::text AS event_id, body, created_at",
            tickets, [counts[t] for t in tickets], [e.id for e in envelopes], [e.type for e in envelopes],
            [e.ticket_no for e in envelopes], heads, tails, index, [counts[t] for t, *_ in events],
            float(self.lease_s))
        written = {r["event_id"]: r for r in rows}
        if len(written) != len(envelopes):
            raise RuntimeError(f"{len(envelopes) - len(written)} outbox rows were not written")
        for e, head, tail in zip(envelopes, heads, tails, strict=True):
            r = written[e.id]
            e.data["seq"] = int(r["body"][len(head):len(r["body"]) - len(tail)])  # what the statement spliced in
            if self.lease_s > 0:
                self.leased.append({"id": r["id"], "event_id": e.id, "routing_key": e.type, "body": r["body"],
                                    "created_at": r["created_at"]})
        self.envelopes.extend(envelopes)
        if self.on_emitted:
            await self.on_emitted(self.conn, envelopes)

    def committed(self) -> None:
        """Run the after-commit effects (the owner calls it once the commit returned)."""
        after, self._after = self._after, []
        for fn in after:
            try:
                fn()
            except Exception as exc:  # noqa: BLE001 - committed already: an effect must not undo the acks
                log.warning("after-commit hook failed", extra={"error": repr(exc)})


SEQ_MARK = -7_340_032_119  # the seq an envelope is serialised with before its real one is known
SEQ_TOKEN = f'"seq":{SEQ_MARK}'.encode()  # where it sits in the body: only ever the envelope's own key
# (a string holding these characters is serialised with its quotes escaped, so cannot match)


def envelope(service: str, ticket_no: str, seq: int, event_id: str, event: EventData,
             time: datetime | None) -> CloudEvent:
    """The CloudEvent for a staged event; every string in the payload is PII-masked here."""
    return CloudEvent(id=event_id, source=f"/helpdesk/{service}", type=event.type, subject=ticket_no,
                      time=time or datetime.now(UTC),
                      data={**mask_deep(event.payload()), "ticket_no": ticket_no, "seq": seq})


class Unit:
    """A use case's view of its transaction: ``conn``, ``duplicate``, ``emit``, ``stage``, ``after_commit``.
    ``owner`` is True when this unit opened the transaction (and so commits it)."""

    def __init__(self, tx: Tx, *, duplicate: bool, owner: bool) -> None:
        self.tx, self.duplicate, self.owner = tx, duplicate, owner

    @property
    def conn(self) -> asyncpg.Connection:
        return self.tx.conn

    def emit(self, ticket_no: str, event: EventData, *, time: datetime | None = None) -> str:
        """Stage ``event`` as an outbox row of this transaction (``seq`` and envelope made at the flush)."""
        return self.tx.emit(ticket_no, event, time=time)

    def stage(self, writer: Writer, row: Any) -> None:
        """Stage an insert row for ``writer`` (a store's batch form), written once per transaction."""
        self.tx.stage(writer, row)

    @property
    def memo(self) -> dict[Any, Any]:
        """The transaction's memo: rows a use case read (and locked) once, for every unit of the batch,
        typically written back once through ``stage``. Gone with the transaction."""
        return self.tx.memo

    def after_commit(self, fn: Callable[[], None]) -> None:
        """Run ``fn`` once the transaction committed (never if it rolls back)."""
        self.tx.after_commit(fn)


Within = Tx | Unit | None
Opener = Callable[..., contextlib.AbstractAsyncContextManager[Tx]]


@contextlib.asynccontextmanager
async def open_unit(transaction: Opener, *, consumer: str | None, message_id: str | None,
                    within: Within) -> AsyncIterator[Unit]:
    """``Runtime.unit``'s body: join ``within`` if given, else open (and commit) a transaction."""
    if within is not None:
        tx = within.tx if isinstance(within, Unit) else within
        duplicate = bool(consumer and message_id) and not await tx.claim(consumer, message_id)  # type: ignore[arg-type]
        yield Unit(tx, duplicate=duplicate, owner=False)
        return
    async with transaction() as tx:
        duplicate = bool(consumer and message_id) and not await tx.claim(consumer, message_id)  # type: ignore[arg-type]
        yield Unit(tx, duplicate=duplicate, owner=True)
