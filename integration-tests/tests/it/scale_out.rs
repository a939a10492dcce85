//! Scale-out: the accounts context as several `platform serve accounts`
//! processes in one consumer group over real Kafka, on one PostgreSQL
//! event store. The partitions of `orders.events` are split between them;
//! one is killed (SIGKILL) in the middle of 10,000 payments and another
//! joins. Every payment must be applied exactly once (commands for the
//! merchant's account from both instances are serialised by the store's
//! expected version, with retries), money conserved, and the group's lag
//! back at zero.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use domain_core::bus::{EventBus, topics};
use domain_core::seeded::SplitMix64;
use domain_core::{Currency, Envelope, Money};
use rust_decimal::Decimal;
use serde_json::{Value, json};

use super::http::{Client, Served, parse_prometheus, sum};
use super::serve::Database;
use super::support::{bus, eventually, unique};

const CUSTOMERS: u64 = 100;
const PAYMENTS: u64 = 10_000;
const OPENING: &str = "10000.00";

fn temp(name: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("scale-out-{name}-{}", uuid::Uuid::now_v7().simple()))
}

async fn metrics(c: &Client) -> BTreeMap<String, f64> {
    let r = c.get("/metrics").await;
    assert_eq!(r.status, 200, "metrics: {}", r.text());
    parse_prometheus(&r.text()).unwrap_or_else(|e| panic!("{e}"))
}

/// The payments: order `so_NNNNN` of customer `n % 100` for a fixed-seed
/// amount under 100, so every customer can pay all of theirs.
fn payments() -> Vec<(String, String, Money)> {
    let mut rng = SplitMix64::new(20_261_202);
    (0..PAYMENTS)
        .map(|n| {
            let cents = 100 + rng.below(9_900);
            let amount = Money::new(Decimal::new(i64::try_from(cents).expect("small"), 2), Currency::CNY);
            (format!("so_{n:05}"), format!("sc_{:03}", n % CUSTOMERS), amount)
        })
        .collect()
}

fn confirmed(order_id: &str, customer: &str, amount: Money) -> Envelope {
    let event = orders::OrderEvent::OrderConfirmed {
        customer_id: customer.to_owned(),
        payment_account_id: customer.to_owned(),
        total_amount: amount,
        item_count: 1,
    };
    Envelope::new(order_id, 4, &event).expect("envelope")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn accounts_as_two_instances_apply_every_payment_once_through_a_kill_and_a_join() {
    let _heavy = super::support::heavy().await;
    let db = Database::create().await;
    let prefix = format!("{}.", unique("scale"));
    let env = [("DATABASE_URL", db.url.as_str())];
    let dirs = [temp("a"), temp("b"), temp("c")];
    let a = Served::start(&["accounts"], &dirs[0], &prefix, &env).await;
    let b = Served::start(&["accounts"], &dirs[1], &prefix, &env).await;
    let (ca, cb) = (a.client(), b.client());

    let payments = payments();
    let open = |id: &str, balance: &str| json!({"account_id": id, "holder": "张三", "currency": "CNY", "initial_balance": balance});
    let r = ca.post_json("/accounts", &open("merchant", "0")).await;
    assert_eq!(r.status, 201, "merchant: {}", r.text());
    for c in 0..CUSTOMERS {
        // Half through each instance: both write to the one store.
        let client = if c % 2 == 0 { &ca } else { &cb };
        let r = client.post_json("/accounts", &open(&format!("sc_{c:03}"), OPENING)).await;
        assert_eq!(r.status, 201, "customer {c}: {}", r.text());
    }

    // What the orders service would publish, straight onto the bus.
    let bus = Arc::new(bus());
    let topic = format!("{prefix}{}", topics::ORDERS);
    let envelopes: Vec<Envelope> = payments.iter().map(|(o, c, m)| confirmed(o, c, *m)).collect();
    let publisher = {
        let bus = Arc::clone(&bus);
        let topic = topic.clone();
        tokio::spawn(async move {
            // All at once: handling them takes far longer than the kill
            // waits for (both instances at 500 handled).
            for chunk in envelopes.chunks(500) {
                bus.publish(&topic, chunk).await.expect("publish");
            }
        })
    };

    // Kill one instance once both have handled some, then a third joins.
    let handled = |m: &BTreeMap<String, f64>| sum(m, "platform_events_handled_total", &[]);
    eventually(Duration::from_secs(180), "both instances handle payments", || async {
        let (ha, hb) = (handled(&metrics(&ca).await), handled(&metrics(&cb).await));
        if ha >= 500.0 && hb >= 500.0 { Ok(()) } else { Err(format!("handled: a {ha}, b {hb}")) }
    })
    .await;
    let pid = a.pid().to_string();
    let killed = std::process::Command::new("kill").args(["-KILL", &pid]).status().expect("kill runs");
    assert!(killed.success(), "kill -9 instance a ({pid})");
    drop(a);
    let c = Served::start(&["accounts"], &dirs[2], &prefix, &env).await;
    let cc = c.client();
    publisher.await.expect("publisher");

    let audit: Value = eventually(Duration::from_secs(300), "every payment settled", || async {
        let r = cb.get("/ledger/audit").await;
        let audit = r.json();
        let in_flight = audit["currencies"]["CNY"]["in_flight"].as_str().and_then(|v| v.parse::<Decimal>().ok());
        if audit["counts"]["payments_captured"].as_u64() == Some(PAYMENTS) && in_flight == Some(Decimal::ZERO) {
            Ok(audit)
        } else {
            Err(format!("counts {}, in flight {in_flight:?}", audit["counts"]))
        }
    })
    .await;
    assert_eq!(audit["money_conserved"], json!(true), "{audit}");
    assert_eq!(audit["counts"]["payments_rejected"], json!(0), "{audit}");

    // Exactly once: the merchant holds the sum of the payments, each
    // customer the opening balance less its own.
    let mut paid: BTreeMap<String, Decimal> = BTreeMap::new();
    for (_, customer, amount) in &payments {
        *paid.entry(customer.clone()).or_default() += amount.amount;
    }
    let total: Decimal = paid.values().sum();
    let balance = |v: &Value| v["balance"].as_str().and_then(|b| b.parse::<Decimal>().ok()).expect("balance");
    let merchant = cc.get("/accounts/merchant").await;
    assert_eq!(balance(&merchant.json()), total, "merchant: {}", merchant.text());
    let opening: Decimal = OPENING.parse().expect("decimal");
    for (customer, spent) in &paid {
        let r = cc.get(&format!("/accounts/{customer}")).await;
        assert_eq!(balance(&r.json()), opening - spent, "{customer}: {}", r.text());
    }

    // The statement read model, one copy on the shared PostgreSQL fed by
    // every instance, agrees line by line: no event twice, none missing.
    let (customer, spent) = paid.iter().next().expect("a customer paid");
    let r = cc.get(&format!("/accounts/{customer}/statement?limit=10000")).await;
    let statement = r.json();
    let lines = statement["lines"].as_array().expect("lines");
    let versions: Vec<u64> = lines.iter().filter_map(|l| l["version"].as_u64()).collect();
    assert_eq!(versions, (1..=lines.len() as u64).collect::<Vec<_>>(), "{}", r.text());
    assert_eq!(statement["version"].as_u64(), Some(lines.len() as u64), "{}", r.text());
    let changes: Decimal = lines.iter().filter_map(|l| l["change"].as_str()?.parse::<Decimal>().ok()).sum();
    assert_eq!((changes, balance(&statement)), (opening - spent, opening - spent), "{}", r.text());
    let page = cb.get("/accounts/merchant/statement?from=2&limit=1").await.json();
    assert_eq!(page["next_from"], json!(3), "{page}");
    let bad = cb.get("/accounts/merchant/statement?limit=0").await;
    assert_eq!(bad.status, 422, "{}", bad.text());

    // The group's lag returns to zero on the instances that remain.
    eventually(Duration::from_secs(120), "consumer lag back at zero", || async {
        let mut lags = Vec::new();
        for m in [metrics(&cb).await, metrics(&cc).await] {
            // Absent until the bus reports it: not yet known is not zero.
            if !m.keys().any(|k| k.starts_with("platform_consumer_lag_records{")) {
                return Err("an instance does not report its lag yet".to_owned());
            }
            lags.push(sum(&m, "platform_consumer_lag_records", &[]));
        }
        if lags.iter().all(|l| *l == 0.0) { Ok(()) } else { Err(format!("lag per instance: {lags:?}")) }
    })
    .await;
    drop((b, c));
    db.drop_it().await;
    for dir in dirs {
        std::fs::remove_dir_all(&dir).ok();
    }
}
