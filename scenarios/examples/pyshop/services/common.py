"""What every pyshop service shares: the settings the platform gives it
(PORT, KAFKA_BOOTSTRAP, TOPIC, GROUP, DATA_DIR, REPLICA, VERSION), the event
envelope, a SQLite store, a transactional outbox with its relay, an
idempotent consumer, the health endpoints (with a warm-up) and stormproof's
misbehaviour switches, and a main loop that ends cleanly on SIGTERM.

This is what a service must do to be checked by stormproof; see the README
in the folder above.
"""

import asyncio
import json
import logging
import os
import random
import signal
import sqlite3
import time
import uuid
from datetime import datetime, timezone

from aiohttp import web
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener

log = logging.getLogger("pyshop")


class Settings:
    """What the platform tells a replica, from its environment."""

    def __init__(self):
        self.port = int(os.environ["PORT"])
        self.kafka = os.environ["KAFKA_BOOTSTRAP"]
        self.topic = os.environ["TOPIC"]
        self.group = os.environ.get("GROUP", "")
        self.data_dir = os.environ["DATA_DIR"]
        self.replica = os.environ.get("REPLICA", "0")
        self.version = os.environ.get("VERSION", "v1")
        self.warmup = float(os.environ.get("WARMUP_SECONDS", "0"))


def now():
    return datetime.now(timezone.utc).isoformat()


def event(event_type, key, **data):
    """The envelope: eventType, a unique id, a timestamp and the flow's
    correlation key (orderId), which is also the Kafka message key."""
    return {"eventType": event_type, "id": str(uuid.uuid4()), "timestamp": now(), "orderId": key, **data}


class Store:
    """One SQLite file per service, shared by its replicas (WAL, so readers
    never wait for the writer). Each call is one transaction."""

    def __init__(self, path, schema):
        self.db = sqlite3.connect(path, isolation_level=None, timeout=10, check_same_thread=False)
        self.db.row_factory = sqlite3.Row
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.executescript(schema + OUTBOX_SCHEMA + INBOX_SCHEMA)

    def transaction(self, work):
        self.db.execute("BEGIN IMMEDIATE")
        try:
            result = work(self.db)
            self.db.execute("COMMIT")
            return result
        except BaseException:
            self.db.execute("ROLLBACK")
            raise

    def rows(self, sql, *args):
        return [dict(row) for row in self.db.execute(sql, args)]


OUTBOX_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, key TEXT NOT NULL, body TEXT NOT NULL,
    sent INTEGER NOT NULL DEFAULT 0, leased_by TEXT, leased_until REAL NOT NULL DEFAULT 0);
"""

INBOX_SCHEMA = """
CREATE TABLE IF NOT EXISTS inbox (event_id TEXT PRIMARY KEY, applied_at TEXT NOT NULL);
"""


def publish(db, evt):
    """Writes `evt` to the outbox in the caller's transaction: it is sent
    once the transaction commits, and never lost if the broker is down."""
    db.execute("INSERT INTO outbox (key, body) VALUES (?, ?)", (str(evt["orderId"]), json.dumps(evt)))


async def relay(store, settings, stopping):
    """Sends the outbox to Kafka in order. Replicas share the outbox, so a
    replica leases a batch before sending it (a lease runs out after 10 s,
    should the replica die)."""
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka, acks="all", linger_ms=2)
    await start_with_retry(producer, "producer")
    try:
        while not stopping.is_set():
            batch = store.transaction(lambda db: lease(db, settings.replica))
            for row in batch:
                # The `type` header names the event (the course's consumers filter on it).
                headers = [("type", json.loads(row["body"])["eventType"].encode())]
                await producer.send_and_wait(settings.topic, row["body"].encode(), key=row["key"].encode(), headers=headers)
                store.transaction(lambda db, seq=row["seq"]: db.execute("UPDATE outbox SET sent = 1 WHERE seq = ?", (seq,)))
            if not batch:
                await wait_or_stop(stopping, 0.05)
    except Exception:
        log.exception("relay stopped")
        raise
    finally:
        await producer.stop()


def lease(db, replica):
    until = time.time() + 10
    return [dict(r) for r in db.execute(
        "UPDATE outbox SET leased_by = ?, leased_until = ? WHERE seq IN "
        "(SELECT seq FROM outbox WHERE sent = 0 AND (leased_by = ? OR leased_until < ?) ORDER BY seq LIMIT 50) "
        "RETURNING seq, key, body", (replica, until, replica, time.time()))]


class StartFrom(ConsumerRebalanceListener):
    """The broken variant's mistake: on every assignment, skip to the end of
    each partition instead of resuming from the group's committed offset."""

    def __init__(self, consumer):
        self.consumer = consumer

    async def on_partitions_revoked(self, revoked):
        pass

    async def on_partitions_assigned(self, assigned):
        if assigned:
            await self.consumer.seek_to_end(*assigned)
            log.warning("START_FROM=latest: skipped to the end of %s", sorted(tp.partition for tp in assigned))


async def consume(store, settings, apply, stopping):
    """Applies every event of the topic once (consumer group GROUP): the
    event's id is recorded in the same transaction as its effect, and the
    offset committed only after that transaction."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka, group_id=settings.group, client_id=settings.replica,
        enable_auto_commit=False, auto_offset_reset="earliest",
        session_timeout_ms=6000, heartbeat_interval_ms=1000, max_poll_interval_ms=10000)
    await start_with_retry(consumer, "consumer")
    listener = StartFrom(consumer) if os.environ.get("START_FROM") == "latest" else None
    consumer.subscribe([settings.topic], listener=listener)
    try:
        while not stopping.is_set():
            batches = await consumer.getmany(timeout_ms=200, max_records=100)
            for tp, records in batches.items():
                for record in records:
                    handle(store, apply, record.value)
                await consumer.commit({tp: records[-1].offset + 1})
    except Exception:
        log.exception("consumer stopped")
        raise
    finally:
        await consumer.stop()


def handle(store, apply, payload):
    try:
        evt = json.loads(payload)
        event_id = evt["id"]
    except (ValueError, KeyError, TypeError):
        log.warning("skipped a message that is not an event: %r", payload[:80])
        return

    def once(db):
        if db.execute("SELECT 1 FROM inbox WHERE event_id = ?", (event_id,)).fetchone():
            return
        apply(db, evt)
        db.execute("INSERT INTO inbox (event_id, applied_at) VALUES (?, ?)", (event_id, now()))

    try:
        store.transaction(once)
    except Exception:  # a poison event is skipped (and logged), never blocks its partition
        log.exception("skipped event %s (%s): its effect failed", event_id, evt.get("eventType"))


async def start_with_retry(client, what):
    for attempt in range(60):
        try:
            await client.start()
            return
        except Exception as err:  # the broker may still be starting
            log.warning("%s: cannot reach Kafka yet (%s)", what, err)
            await asyncio.sleep(0.5)
    raise RuntimeError(f"{what}: Kafka unreachable")


async def wait_or_stop(stopping, seconds):
    try:
        await asyncio.wait_for(stopping.wait(), seconds)
    except asyncio.TimeoutError:
        pass


class Health:
    """/health/ready, /health/live and stormproof's switches
    (/_stormproof/switches: unhealthy, unready, delayMs, errorFraction).
    A replica is not ready during its warm-up, and its business routes
    answer 503 until then."""

    def __init__(self, settings):
        self.started = time.monotonic()
        self.warmup = settings.warmup
        self.version = settings.version
        self.switches = {"unhealthy": False, "unready": False, "delayMs": 0, "errorFraction": 0.0}

    def warming(self):
        return time.monotonic() - self.started < self.warmup

    def routes(self, app):
        app.router.add_get("/health/ready", self.ready)
        app.router.add_get("/health/live", self.live)
        app.router.add_get("/_stormproof/switches", self.get_switches)
        app.router.add_put("/_stormproof/switches", self.put_switches)
        app.middlewares.append(self.middleware)

    async def ready(self, _request):
        if self.warming() or self.switches["unready"]:
            return web.json_response({"status": "DOWN", "version": self.version}, status=503)
        return web.json_response({"status": "UP", "version": self.version})

    async def live(self, _request):
        if self.switches["unhealthy"]:
            return web.json_response({"status": "DOWN"}, status=503)
        return web.json_response({"status": "UP"})

    async def get_switches(self, _request):
        return web.json_response(self.switches)

    async def put_switches(self, request):
        try:
            given = await request.json()
            merged = {**self.switches, **{k: given[k] for k in self.switches if k in given}}
            if not 0 <= float(merged["errorFraction"]) <= 1:
                raise ValueError("errorFraction must be within 0..1")
        except (ValueError, TypeError) as err:
            return web.json_response({"error": "Bad Request", "reason": str(err)}, status=400)
        self.switches = merged
        log.warning("switches now %s", merged)
        return web.json_response(merged)

    @web.middleware
    async def middleware(self, request, handler):
        if request.path.startswith(("/health/", "/_stormproof/")):
            return await handler(request)
        if self.warming():
            return web.json_response({"error": "Service Unavailable", "reason": "warming up"}, status=503)
        if self.switches["delayMs"]:
            await asyncio.sleep(self.switches["delayMs"] / 1000)
        if random.random() < float(self.switches["errorFraction"]):
            return web.json_response({"error": "Internal Server Error", "reason": "errorFraction switch"}, status=500)
        return await handler(request)


def bad_request(reason):
    return web.json_response({"error": "Bad Request", "reason": reason}, status=400)


def run(name, build):
    """Runs service `name`: `build(settings, stopping)` returns its aiohttp
    app and its background tasks. SIGTERM stops taking requests, stops the
    tasks (a consumer commits what it applied) and exits 0."""
    logging.basicConfig(level=logging.INFO, format=f"%(asctime)s {name} %(levelname)s %(message)s")
    settings = Settings()
    os.makedirs(settings.data_dir, exist_ok=True)

    async def main():
        stopping = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stopping.set)
        app, tasks = build(settings, stopping)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", settings.port).start()
        log.info("%s %s listening on 127.0.0.1:%d", settings.replica, settings.version, settings.port)
        running = [asyncio.create_task(t) for t in tasks]
        stopped = asyncio.create_task(stopping.wait())
        done, _ = await asyncio.wait([stopped, *running], return_when=asyncio.FIRST_COMPLETED)
        stopping.set()
        await runner.cleanup()
        results = await asyncio.gather(*running, return_exceptions=True)
        failed = [r for r in results if isinstance(r, BaseException)]
        log.info("%s stopped%s", settings.replica, f" ({failed[0]!r})" if failed else "")
        return 1 if failed and stopped not in done else 0

    raise SystemExit(asyncio.run(main()))
