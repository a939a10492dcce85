//! Orders placed over HTTP by concurrent clients that retry the way a real
//! client does (a service being restarted answers nothing, then answers
//! again), and the end state the contexts must agree on afterwards.

use std::collections::BTreeMap;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use rust_decimal::Decimal;
use serde_json::{Value, json};

use super::Addrs;
use crate::http::{Client, Reply};
use crate::support::eventually;

pub const CUSTOMERS: usize = 20;
pub const MERCHANT: &str = "merchant";
/// Product id and unit price.
const PRODUCTS: [(&str, &str); 5] = [
    ("product_001", "99.99"),
    ("product_002", "19.90"),
    ("product_003", "5.00"),
    ("product_004", "249.00"),
    ("product_005", "0.99"),
];

pub fn customer(c: usize) -> String {
    format!("cust_{c:03}")
}

/// Two customers in ten cannot pay for much: their payments are refused
/// once the money runs out, and those orders end cancelled.
pub fn initial_balance(c: usize) -> Decimal {
    if c % 10 == 7 { Decimal::from(300) } else { Decimal::from(1_000_000) }
}

pub fn order_id(run: &str, i: usize) -> String {
    format!("{run}_{i:05}")
}

/// Every tenth order is cancelled before it is confirmed.
fn cancelled_by_the_client(i: usize) -> bool {
    i % 10 == 3
}

fn decimal(v: &Value) -> Decimal {
    v.as_str().and_then(|s| Decimal::from_str(s).ok()).unwrap_or_else(|| panic!("not a decimal: {v}"))
}

/// Sends until the service answers something other than 503; an answer
/// lost on the way (the process was killed) is retried. Also says whether
/// it took more than one attempt.
async fn call(addr: &str, method: &str, path: &str, body: Option<&Value>) -> (Reply, bool) {
    let client = Client::new(addr);
    let bytes = body.map(Value::to_string).unwrap_or_default().into_bytes();
    let headers: &[(&str, &str)] = if body.is_some() { &[("Content-Type", "application/json")] } else { &[] };
    let attempts = AtomicUsize::new(0);
    let reply = eventually(Duration::from_secs(240), &format!("an answer to {method} {path}"), || {
        attempts.fetch_add(1, Ordering::Relaxed);
        let (client, bytes) = (client.clone(), bytes.clone());
        async move {
            match client.send(method, path, headers, &bytes).await {
                Ok(r) if r.status != 503 => Ok(r),
                Ok(r) => Err(format!("503 {}", r.text())),
                Err(e) => Err(e.to_string()),
            }
        }
    })
    .await;
    (reply, attempts.load(Ordering::Relaxed) > 1)
}

/// `call` for a step whose retry may find it done already (409).
async fn step(addr: &str, method: &str, path: &str, body: Option<&Value>, ok: u16) {
    let (r, retried) = call(addr, method, path, body).await;
    let done_before = retried && r.status == 409;
    assert!(r.status == ok || done_before, "{method} {path}: {} {}", r.status, r.text());
}

/// Opens every customer's account and the merchant's; the money in the system.
pub async fn open_accounts(addrs: &Addrs) -> Decimal {
    let accounts = &addrs["accounts"];
    let mut total = Decimal::ZERO;
    for c in 0..CUSTOMERS {
        let balance = initial_balance(c);
        let body = json!({"account_id": customer(c), "holder": "张三", "currency": "CNY", "initial_balance": balance.to_string()});
        step(accounts, "POST", "/accounts", Some(&body), 201).await;
        total += balance;
    }
    let body = json!({"account_id": MERCHANT, "holder": "商户", "currency": "CNY", "initial_balance": "0"});
    step(accounts, "POST", "/accounts", Some(&body), 201).await;
    total
}

/// Registers every customer's master data (the `customer_data_v1`
/// product's records, which the registry measures).
pub async fn register_customers(addrs: &Addrs) {
    let orders = &addrs["orders"];
    for c in 0..CUSTOMERS {
        let email = format!("customer{c}@example.com");
        let body = json!({"name": "张三", "email": email, "registration_date": "2023-01-15", "segment": if c % 2 == 0 { "premium" } else { "standard" }});
        step(orders, "PUT", &format!("/customers/{}", customer(c)), Some(&body), 200).await;
    }
}

/// One order: created, one item line, then confirmed (paid or refused by
/// the payment saga) or cancelled by the client.
async fn place(orders: &str, run: &str, i: usize) {
    let id = order_id(run, i);
    let body = json!({"order_id": id, "customer_id": customer(i % CUSTOMERS), "name": "张三", "email": "zhangsan@example.com", "phone": "13800138000"});
    step(orders, "POST", "/orders", Some(&body), 201).await;
    let (product, price) = PRODUCTS[i % PRODUCTS.len()];
    let item = json!({"product_id": product, "quantity": 1 + i % 3, "unit_price": price});
    let items = format!("/orders/{id}/items");
    loop {
        let (r, retried) = call(orders, "POST", &items, Some(&item)).await;
        if r.status == 200 {
            break;
        }
        // A lost answer may have added the line already: add it once.
        let (now, _) = call(orders, "GET", &format!("/orders/{id}"), None).await;
        if retried && now.json()["items"].as_array().is_some_and(|l| !l.is_empty()) {
            break;
        }
        assert!(retried, "POST {items}: {} {}", r.status, r.text());
    }
    if cancelled_by_the_client(i) {
        let why = json!({"reason": "changed my mind"});
        step(orders, "POST", &format!("/orders/{id}/cancel"), Some(&why), 202).await;
    } else {
        step(orders, "POST", &format!("/orders/{id}/confirm"), Some(&json!({})), 202).await;
    }
}

/// Places orders `range` with `clients` concurrent clients, counting in
/// `placed` the orders whose last step was answered.
pub async fn place_orders(
    addrs: &Addrs,
    run: &str,
    range: std::ops::Range<usize>,
    clients: usize,
    placed: Arc<AtomicUsize>,
) {
    let orders: Arc<str> = addrs["orders"].as_str().into();
    let run: Arc<str> = run.into();
    let mut tasks = Vec::new();
    for w in 0..clients {
        let (orders, run, range, placed) = (Arc::clone(&orders), Arc::clone(&run), range.clone(), Arc::clone(&placed));
        tasks.push(tokio::spawn(async move {
            for i in range.filter(|i| i % clients == w) {
                place(&orders, &run, i).await;
                placed.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    for t in tasks {
        t.await.expect("an order client failed");
    }
}

/// An order's end: its status and total.
#[derive(Debug, Clone, PartialEq)]
pub struct Ended {
    pub customer: String,
    pub status: String,
    pub total: Decimal,
}

async fn open_orders(orders: String, run: String) -> Result<(), String> {
    let mut open = 0;
    for c in 0..CUSTOMERS {
        let (r, _) = call(&orders, "GET", &format!("/orders?customer_id={}", customer(c)), None).await;
        let rows = r.json();
        let rows = rows.as_array().cloned().unwrap_or_default();
        let mine = rows.iter().filter(|o| o["order_id"].as_str().is_some_and(|id| id.starts_with(&run)));
        open += mine.filter(|o| !matches!(o["status"].as_str(), Some("paid" | "cancelled"))).count();
    }
    if open == 0 { Ok(()) } else { Err(format!("{open} order(s) neither paid nor cancelled")) }
}

/// Waits until every order of `0..n` is paid or cancelled; their ends.
pub async fn wait_terminal(addrs: &Addrs, run: &str, n: usize, limit: Duration) -> BTreeMap<String, Ended> {
    let orders = addrs["orders"].clone();
    eventually(limit, "every order ending", || open_orders(orders.clone(), run.to_owned())).await;
    let mut out = BTreeMap::new();
    for i in 0..n {
        let id = order_id(run, i);
        let (r, _) = call(&orders, "GET", &format!("/orders/{id}"), None).await;
        assert_eq!(r.status, 200, "order {id}: {}", r.text());
        let o = r.json();
        let ended = Ended {
            customer: o["customer_id"].as_str().unwrap_or_default().to_owned(),
            status: o["order_status"].as_str().unwrap_or_default().to_owned(),
            total: decimal(&o["total_amount"]),
        };
        assert!(matches!(ended.status.as_str(), "paid" | "cancelled"), "{id} ended {}: {o}", ended.status);
        if cancelled_by_the_client(i) {
            assert_eq!(ended.status, "cancelled", "{id} was cancelled by its client");
        }
        out.insert(id, ended);
    }
    out
}

/// What the orders say was paid: per customer, and in all.
pub fn paid(ends: &BTreeMap<String, Ended>) -> (BTreeMap<String, Decimal>, Decimal, usize) {
    let mut per = BTreeMap::new();
    let (mut all, mut count) = (Decimal::ZERO, 0);
    for e in ends.values().filter(|e| e.status == "paid") {
        *per.entry(e.customer.clone()).or_insert(Decimal::ZERO) += e.total;
        all += e.total;
        count += 1;
    }
    (per, all, count)
}

async fn balance(accounts: &str, id: &str) -> Decimal {
    let (r, _) = call(accounts, "GET", &format!("/accounts/{id}"), None).await;
    assert_eq!(r.status, 200, "account {id}: {}", r.text());
    decimal(&r.json()["balance"])
}

/// Nothing charged twice and nothing lost: each customer paid exactly
/// their paid orders, the merchant holds all of it, the sum is unchanged.
pub async fn check_money(addrs: &Addrs, ends: &BTreeMap<String, Ended>, money: Decimal) {
    let accounts = addrs["accounts"].clone();
    let (per, all, _) = paid(ends);
    // The merchant's credit follows the customer's debit on the bus.
    eventually(Duration::from_secs(120), "the merchant's credits", || {
        let accounts = accounts.clone();
        async move {
            let has = balance(&accounts, MERCHANT).await;
            if has == all { Ok(()) } else { Err(format!("the merchant holds {has} of the {all} paid")) }
        }
    })
    .await;
    let mut sum = balance(&accounts, MERCHANT).await;
    for c in 0..CUSTOMERS {
        let id = customer(c);
        let has = balance(&accounts, &id).await;
        let spent = per.get(&id).copied().unwrap_or(Decimal::ZERO);
        assert_eq!(has, initial_balance(c) - spent, "{id} paid {spent} for its orders");
        sum += has;
    }
    assert_eq!(sum, money, "money is conserved");
}

async fn gold_revenue(lake: String) -> Result<Option<Decimal>, String> {
    let (r, _) = call(&lake, "POST", "/lake/refine", None).await;
    if r.status != 200 {
        return Err(format!("refine answered {}: {}", r.status, r.text()));
    }
    let sql = json!({"sql": "SELECT CAST(SUM(revenue) AS VARCHAR) AS revenue FROM gold.revenue_per_product_day"});
    let (q, _) = call(&lake, "POST", "/lake/sql", Some(&sql)).await;
    if q.status != 200 {
        return Err(format!("sql answered {}: {}", q.status, q.text()));
    }
    Ok(q.json()["rows"][0]["revenue"].as_str().and_then(|s| Decimal::from_str(s).ok()))
}

/// Gold revenue is the paid orders' total: refines until the lake has
/// ingested everything (bronze follows the bus).
pub async fn check_lake(addrs: &Addrs, ends: &BTreeMap<String, Ended>) {
    let lake = addrs["lake"].clone();
    let (_, all, _) = paid(ends);
    eventually(Duration::from_secs(180), "gold revenue reaching the paid total", || {
        let lake = lake.clone();
        async move {
            match gold_revenue(lake).await {
                Ok(Some(r)) if r == all => Ok(()),
                Ok(other) => Err(format!("gold revenue {other:?}, paid {all}")),
                Err(e) => Err(e),
            }
        }
    })
    .await;
}

async fn paid_points(ts: String) -> Result<(f64, f64), String> {
    let path = "/ts/query?series=order_paid_amount&from=2000-01-01T00:00:00Z&to=2100-01-01T00:00:00Z";
    let (r, _) = call(&ts, "GET", path, None).await;
    if r.status != 200 {
        return Err(format!("query answered {}: {}", r.status, r.text()));
    }
    let answer = r.json();
    let (mut n, mut sum) = (0.0, 0.0);
    // Without `every` the answer is raw: series with [time, value] pairs.
    for series in answer["raw"].as_array().ok_or_else(|| format!("not a raw answer: {answer}"))? {
        for p in series["points"].as_array().ok_or_else(|| format!("no points in {series}"))? {
            n += 1.0;
            sum += p[1].as_f64().ok_or_else(|| format!("no value in {p}"))?;
        }
    }
    Ok((n, sum))
}

/// The time-series engine holds one `order_paid_amount` point per paid
/// order, and they add up to the paid total.
pub async fn check_timeseries(addrs: &Addrs, ends: &BTreeMap<String, Ended>) {
    let ts = addrs["timeseries"].clone();
    let (_, all, count) = paid(ends);
    let all = all.to_string().parse::<f64>().unwrap_or(f64::NAN);
    eventually(Duration::from_secs(120), "one point per paid order", || {
        let ts = ts.clone();
        async move {
            match paid_points(ts).await {
                Ok((n, sum)) if n == count as f64 && (sum - all).abs() < 1e-6 * all.max(1.0) => Ok(()),
                Ok((n, sum)) => Err(format!("{n} point(s) summing to {sum}; {count} paid orders summing to {all}")),
                Err(e) => Err(e),
            }
        }
    })
    .await;
}

/// The registry lists the customer data product with quality measured
/// from this traffic.
pub async fn check_registry(addrs: &Addrs) {
    let registry = addrs["registry"].clone();
    eventually(Duration::from_secs(120), "customer_data_v1 measured", || {
        let registry = registry.clone();
        async move {
            let (p, _) = call(&registry, "GET", "/registry/products", None).await;
            let listed = p.status == 200
                && p.json().as_array().is_some_and(|a| a.iter().any(|x| x["id"] == json!("customer_data_v1")));
            if !listed {
                return Err(format!("not listed: {}", p.text()));
            }
            let (q, _) = call(&registry, "GET", "/registry/products/customer_data_v1/quality", None).await;
            let j = q.json();
            // One entry per output port; `measurement` once its enforcer read records.
            let measured = j.as_array().is_some_and(|ports| {
                ports.iter().any(|port| port["measurement"]["totals"]["records"].as_u64().is_some_and(|n| n > 0))
            });
            if q.status == 200 && measured { Ok(()) } else { Err(format!("quality: {}", q.text())) }
        }
    })
    .await;
}
