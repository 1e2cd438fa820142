//! Tables: the row mapping every service repeats — find by id, find by a
//! column, list with an optional filter — over the store's cached
//! statements, each row deserialized into a struct by column name
//! (`libsql::de::from_row`). A table's SELECT aliases its columns to the
//! struct's field names; column names are `&'static str`, never input.

use serde::de::DeserializeOwned;

use super::store::Conn;

/// How a service reads one of its tables.
#[derive(Debug, Clone, Copy)]
pub struct Table {
    /// `SELECT …columns… FROM table`, columns aliased to the struct's fields.
    pub select: &'static str,
    /// The id column.
    pub id: &'static str,
    /// The column lists are ordered by.
    pub order_by: &'static str,
}

impl Table {
    /// The row whose id is `id`.
    pub async fn find<T: DeserializeOwned>(&self, conn: &Conn, id: i64) -> anyhow::Result<Option<T>> {
        self.find_by(conn, self.id, id).await
    }

    /// The first row whose `column` equals `value`.
    pub async fn find_by<T: DeserializeOwned>(&self, conn: &Conn, column: &'static str, value: impl Into<libsql::Value>) -> anyhow::Result<Option<T>> {
        let sql = format!("{} WHERE {column} = ?1 LIMIT 1", self.select);
        conn.first(&sql, [value.into()]).await
    }

    /// Every row, or those whose `column` equals the filter's value, in order.
    pub async fn list<T: DeserializeOwned>(&self, conn: &Conn, filter: Option<(&'static str, libsql::Value)>) -> anyhow::Result<Vec<T>> {
        match filter {
            Some((column, value)) => conn.all(&format!("{} WHERE {column} = ?1 ORDER BY {}", self.select, self.order_by), [value]).await,
            None => conn.all(&format!("{} ORDER BY {}", self.select, self.order_by), ()).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::systems::kit::Store;

    #[derive(Debug, serde::Deserialize, PartialEq)]
    #[serde(rename_all = "camelCase")]
    struct Item {
        id: i64,
        item_name: String,
        note: Option<String>,
    }

    const ITEMS: Table = Table { select: r#"SELECT id, item_name AS "itemName", note FROM items"#, id: "id", order_by: "id" };

    #[tokio::test]
    async fn rows_map_to_structs_by_alias_and_reals_are_an_error_not_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("t.db"), "CREATE TABLE items (id INTEGER PRIMARY KEY, item_name TEXT, note TEXT, n INTEGER);")
            .await
            .unwrap();
        let tx = store.begin().await.unwrap();
        tx.execute("INSERT INTO items (id, item_name, note) VALUES (1, 'a', NULL), (2, 'b', 'x')", ()).await.unwrap();
        // What an overflowing `stock + ?` leaves behind: a REAL in an INTEGER column.
        tx.execute("INSERT INTO items (id, item_name, n) VALUES (3, 'c', 9223372036854775807 + 1)", ()).await.unwrap();
        tx.commit().await.unwrap();
        let conn = store.read().await.unwrap();
        let one: Option<Item> = ITEMS.find(&conn, 1).await.unwrap();
        assert_eq!(one, Some(Item { id: 1, item_name: "a".into(), note: None }));
        let found: Option<Item> = ITEMS.find_by(&conn, "note", "x").await.unwrap();
        assert_eq!(found.unwrap().id, 2);
        let all: Vec<Item> = ITEMS.list(&conn, None).await.unwrap();
        assert_eq!(all.len(), 3);
        let none: Option<Item> = ITEMS.find(&conn, 99).await.unwrap();
        assert!(none.is_none());
        #[derive(Debug, serde::Deserialize)]
        #[allow(dead_code)]
        struct N {
            n: i64,
        }
        let real = conn.first::<N>("SELECT n FROM items WHERE id = 3", ()).await;
        assert!(real.is_err(), "a REAL read as an integer is an error: {real:?}");
    }
}
