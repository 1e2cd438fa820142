"""mypage (read model, CQRS): one row per order, built only from events
(OrderPlaced, then DeliveryStarted), each applied once. GET
/mypages?customerId=…, GET /mypages/{orderId}."""

from aiohttp import web

from common import Health, Store, bad_request, consume, run

SCHEMA = """
CREATE TABLE IF NOT EXISTS mypages (
    order_id INTEGER PRIMARY KEY, customer_id TEXT, product_id INTEGER, quantity INTEGER,
    delivery_status TEXT NOT NULL, events_applied INTEGER NOT NULL);
"""


def as_json(row):
    return {"orderId": row["order_id"], "customerId": row["customer_id"], "productId": row["product_id"], "quantity": row["quantity"],
            "deliveryStatus": row["delivery_status"], "eventsApplied": row["events_applied"]}


def apply(db, evt):
    kind, order = evt.get("eventType"), evt["orderId"]
    if kind == "OrderPlaced":
        db.execute("INSERT INTO mypages (order_id, customer_id, product_id, quantity, delivery_status, events_applied) "
                   "VALUES (?, ?, ?, ?, 'preparing', 1) ON CONFLICT(order_id) DO UPDATE SET customer_id = excluded.customer_id, "
                   "product_id = excluded.product_id, quantity = excluded.quantity, events_applied = events_applied + 1",
                   (order, evt.get("customerId"), evt.get("productId"), evt.get("quantity")))
    elif kind == "DeliveryStarted":
        db.execute("INSERT INTO mypages (order_id, delivery_status, events_applied) VALUES (?, 'DeliveryStarted', 1) "
                   "ON CONFLICT(order_id) DO UPDATE SET delivery_status = 'DeliveryStarted', events_applied = events_applied + 1", (order,))


def build(settings, stopping):
    store = Store(f"{settings.data_dir}/mypage.db", SCHEMA)
    health = Health(settings)

    async def list_pages(request):
        customer = request.query.get("customerId")
        if customer is None:
            return web.json_response([as_json(r) for r in store.rows("SELECT * FROM mypages ORDER BY order_id DESC LIMIT 100")])
        return web.json_response([as_json(r) for r in store.rows("SELECT * FROM mypages WHERE customer_id = ? ORDER BY order_id", customer)])

    async def one(request):
        try:
            order = int(request.match_info["orderId"])
        except ValueError:
            return bad_request("the order id must be a number")
        rows = store.rows("SELECT * FROM mypages WHERE order_id = ?", order)
        if not rows:
            return web.json_response({"error": "Not Found", "reason": f"no page for order {order} (yet)"}, status=404)
        return web.json_response(as_json(rows[0]))

    app = web.Application()
    health.routes(app)
    app.router.add_get("/mypages", list_pages)
    app.router.add_get("/mypages/{orderId}", one)
    return app, [consume(store, settings, apply, stopping)]


if __name__ == "__main__":
    run("mypage", build)
