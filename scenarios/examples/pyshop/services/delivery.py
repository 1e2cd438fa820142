"""delivery (supporting): starts a delivery for every OrderPlaced it
consumes (consumer group GROUP), once per event, and publishes
DeliveryStarted through its own outbox. GET /deliveries?orderId=…"""

from aiohttp import web

from common import Health, Store, bad_request, consume, event, now, publish, relay, run

SCHEMA = """
CREATE TABLE IF NOT EXISTS deliveries (
    id INTEGER PRIMARY KEY AUTOINCREMENT, order_id INTEGER NOT NULL UNIQUE, customer_addr TEXT NOT NULL,
    status TEXT NOT NULL, started_at TEXT NOT NULL);
"""


def as_json(row):
    return {"id": row["id"], "orderId": row["order_id"], "customerAddr": row["customer_addr"], "status": row["status"], "startedAt": row["started_at"]}


def apply(db, evt):
    if evt.get("eventType") != "OrderPlaced":
        return
    db.execute("INSERT OR IGNORE INTO deliveries (order_id, customer_addr, status, started_at) VALUES (?, ?, 'DeliveryStarted', ?)",
               (evt["orderId"], evt.get("customerAddr", ""), now()))
    publish(db, event("DeliveryStarted", evt["orderId"], customerAddr=evt.get("customerAddr", "")))


def build(settings, stopping):
    store = Store(f"{settings.data_dir}/delivery.db", SCHEMA)
    health = Health(settings)

    async def list_deliveries(request):
        order = request.query.get("orderId")
        if order is None:
            return web.json_response([as_json(r) for r in store.rows("SELECT * FROM deliveries ORDER BY id DESC LIMIT 100")])
        try:
            order = int(order)
        except ValueError:
            return bad_request("orderId must be a number")
        return web.json_response([as_json(r) for r in store.rows("SELECT * FROM deliveries WHERE order_id = ?", order)])

    app = web.Application()
    health.routes(app)
    app.router.add_get("/deliveries", list_deliveries)
    return app, [consume(store, settings, apply, stopping), relay(store, settings, stopping)]


if __name__ == "__main__":
    run("delivery", build)
