//! The one read transaction (`Db::begin_read`), through which `GET /events` reads an event
//! with its nodes and firings: every statement in it sees the database of its first read,
//! whatever commits meanwhile, on both backends.

use edgecap_model::AccountLimits;
use edgecap_server::db::{accounts, count_rows};

use crate::both_databases;
use crate::common::{Backend, Harness};

both_databases!(a_read_transaction_reads_one_moment);

async fn a_read_transaction_reads_one_moment(b: Backend) {
    let Some(h) = Harness::new(b).await else {
        return;
    };
    let db = &h.state.db;
    let count = "SELECT COUNT(*) FROM accounts";
    let mut tx = db.begin_read().await.unwrap();
    let first: i64 = sqlx::query_scalar(count).fetch_one(&mut *tx).await.unwrap();
    // A write commits beside the open read transaction (neither waits for the other).
    accounts::create(db, "meanwhile", &AccountLimits::default())
        .await
        .unwrap();
    assert_eq!(count_rows(db, "accounts").await.unwrap(), first + 1);
    let second: i64 = sqlx::query_scalar(count).fetch_one(&mut *tx).await.unwrap();
    assert_eq!(
        second, first,
        "a second read in the transaction sees the moment of the first ({b:?})"
    );
    tx.commit().await.unwrap();
    let mut tx = db.begin_read().await.unwrap();
    let later: i64 = sqlx::query_scalar(count).fetch_one(&mut *tx).await.unwrap();
    assert_eq!(later, first + 1, "the next transaction sees the write");
    tx.commit().await.unwrap();
}
