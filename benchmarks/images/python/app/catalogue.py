"""The service's data: a few rows in an in-memory SQLite database."""

import decimal
import hashlib

PRODUCTS = ["anvil", "bellows", "chisel", "drill", "file", "gimlet", "hammer", "jig", "kiln", "lathe"]


def load(db):
    db.execute("CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT, sku TEXT, price TEXT)")
    for i, name in enumerate(PRODUCTS):
        sku = hashlib.sha256(name.encode()).hexdigest()[:12]
        price = decimal.Decimal(i * 7 + 3) / 4
        db.execute("INSERT INTO items VALUES (?, ?, ?, ?)", (i, name, sku, str(price)))
    db.commit()


def count(db):
    return db.execute("SELECT COUNT(*) FROM items").fetchone()[0]


def items(db, limit):
    rows = db.execute("SELECT id, name, sku, price FROM items ORDER BY id LIMIT ?", (limit,))
    return [{"id": r[0], "name": r[1], "sku": r[2], "price": r[3]} for r in rows]
