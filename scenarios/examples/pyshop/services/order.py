"""order (core): places orders. POST /orders writes the order and its
OrderPlaced event in one SQLite transaction (the outbox); the relay sends
the event to Kafka, keyed by orderId. GET /orders?customerId=…, GET
/orders/{id}."""

import os

from aiohttp import web

from common import Health, Store, bad_request, event, now, publish, relay, run

SCHEMA = """
CREATE TABLE IF NOT EXISTS orders (
    id INTEGER PRIMARY KEY AUTOINCREMENT, product_id INTEGER NOT NULL, quantity INTEGER NOT NULL,
    customer_id TEXT NOT NULL, customer_name TEXT NOT NULL, customer_addr TEXT NOT NULL,
    status TEXT NOT NULL, created_at TEXT NOT NULL);
"""

OMIT_CUSTOMER_ID = os.environ.get("OMIT_CUSTOMER_ID") == "1"

FIELDS = {"productId": int, "quantity": int, "customerId": str, "customerName": str, "customerAddr": str}


def as_json(row):
    return {"id": row["id"], "productId": row["product_id"], "quantity": row["quantity"], "customerId": row["customer_id"],
            "customerName": row["customer_name"], "customerAddr": row["customer_addr"], "status": row["status"], "createdAt": row["created_at"]}


def build(settings, stopping):
    store = Store(f"{settings.data_dir}/order.db", SCHEMA)
    health = Health(settings)

    async def place(request):
        try:
            body = await request.json()
        except ValueError:
            return bad_request("the body is not JSON")
        if not isinstance(body, dict):
            return bad_request("expected a JSON object")
        for field, kind in FIELDS.items():
            if not isinstance(body.get(field), kind) or isinstance(body.get(field), bool):
                return bad_request(f"`{field}` must be a {kind.__name__}")
        if body["quantity"] < 1:
            return bad_request("`quantity` must be at least 1")

        def write(db):
            cur = db.execute(
                "INSERT INTO orders (product_id, quantity, customer_id, customer_name, customer_addr, status, created_at) "
                "VALUES (?, ?, ?, ?, ?, 'OrderPlaced', ?)",
                (body["productId"], body["quantity"], body["customerId"], body["customerName"], body["customerAddr"], now()))
            row = db.execute("SELECT * FROM orders WHERE id = ?", (cur.lastrowid,)).fetchone()
            order = as_json(row)
            placed = event("OrderPlaced", order["id"], productId=order["productId"], quantity=order["quantity"],
                           customerId=order["customerId"], customerName=order["customerName"], customerAddr=order["customerAddr"])
            if OMIT_CUSTOMER_ID:  # the variant that breaks mypage's pact
                del placed["customerId"]
            publish(db, placed)
            return order

        return web.json_response(store.transaction(write), status=201)

    async def list_orders(request):
        customer = request.query.get("customerId")
        if customer is None:
            rows = store.rows("SELECT * FROM orders ORDER BY id DESC LIMIT 100")
        else:
            rows = store.rows("SELECT * FROM orders WHERE customer_id = ? ORDER BY id", customer)
        return web.json_response([as_json(r) for r in rows])

    async def one(request):
        try:
            order_id = int(request.match_info["id"])
        except ValueError:
            return bad_request("the order id must be a number")
        rows = store.rows("SELECT * FROM orders WHERE id = ?", order_id)
        if not rows:
            return web.json_response({"error": "Not Found", "reason": f"no order {order_id}"}, status=404)
        return web.json_response(as_json(rows[0]))

    app = web.Application()
    health.routes(app)
    app.router.add_post("/orders", place)
    app.router.add_get("/orders", list_orders)
    app.router.add_get("/orders/{id}", one)
    return app, [relay(store, settings, stopping)]


if __name__ == "__main__":
    run("order", build)
