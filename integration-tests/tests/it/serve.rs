//! `platform serve all` as a real process over real Kafka: every endpoint
//! answers, `/metrics` parses and moves with the traffic, bad input gets a
//! 4xx JSON error naming the problem while the service keeps serving, and
//! SIGTERM during load loses no acknowledged request and exits 0.

use std::collections::BTreeSet;
use std::io::Write as _;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use orders::OrderRepository;
use serde_json::{Value, json};

use super::http::{Client, Served, parse_prometheus, sum};
use super::support::{unique, wait_until_async};

fn temp(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("serve-{name}-{}", uuid::Uuid::now_v7().simple()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

/// Asserts the status, printing the body when it is not the expected one.
fn expect(reply: &super::http::Reply, status: u16, what: &str) {
    assert_eq!(reply.status, status, "{what}: {}", reply.text());
}

async fn metrics(c: &Client) -> std::collections::BTreeMap<String, f64> {
    let r = c.get("/metrics").await;
    expect(&r, 200, "metrics");
    assert!(r.header("content-type").is_some_and(|t| t.starts_with("text/plain")), "{:?}", r.headers);
    parse_prometheus(&r.text()).unwrap_or_else(|e| panic!("{e}\n{}", r.text()))
}

/// Creates order `id` for cust_123 (two items at 99.99), confirms it with
/// `writer` and waits, reading with `reader`, until the payment saga paid it.
async fn order_paid(writer: &Client, reader: &Client, id: &str) {
    let body = json!({"order_id": id, "customer_id": "cust_123", "name": "张三", "email": "zhangsan@example.com", "phone": "13800138000"});
    expect(&writer.post_json("/orders", &body).await, 201, "create order");
    let line = json!({"product_id": "product_001", "quantity": 2, "unit_price": "99.99"});
    let item = writer.post_json(&format!("/orders/{id}/items"), &line).await;
    expect(&item, 200, "add item");
    assert_eq!(item.json()["total_amount"], json!("199.98"));
    expect(&writer.post_json(&format!("/orders/{id}/confirm"), &json!({})).await, 202, "confirm");
    let paid = wait_until_async(Duration::from_secs(60), || {
        let (reader, path) = (reader.clone(), format!("/orders/{id}"));
        async move { reader.get(&path).await.json()["order_status"] == json!("paid") }
    })
    .await;
    assert!(paid, "the payment saga paid {id}: {}", reader.get(&format!("/orders/{id}")).await.text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_endpoint_answers_and_bad_input_gets_precise_4xx() {
    let _heavy = super::support::heavy().await;
    let data = temp("all");
    let env = [("PLATFORM_TOKENS", "writer:read,write;reader:read"), ("PLATFORM_BODY_LIMIT", "65536")];
    let served = Served::start(&["all"], &data, &format!("{}.", unique("serve")), &env).await;
    let open = served.client();
    let c = open.with_token("writer");
    let reader = open.with_token("reader");

    // --- probes and the document, without a token.
    let h = open.get("/healthz").await;
    expect(&h, 200, "healthz");
    assert_eq!(h.json()["contexts"], json!(["orders", "accounts", "registry", "lake", "timeseries"]));
    let r = open.get("/readyz").await;
    expect(&r, 200, "readyz");
    for check in ["bus", "orders", "accounts", "registry", "lake", "timeseries", "workers"] {
        assert_eq!(r.json()["checks"][check]["ok"], json!(true), "{check}: {}", r.text());
    }
    let doc = open.get("/openapi.json").await;
    expect(&doc, 200, "openapi");
    assert!(doc.json()["paths"]["/orders/{id}/confirm"]["post"].is_object());
    let before = metrics(&open).await;

    // --- accounts.
    let opened = c
        .post_json(
            "/accounts",
            &json!({"account_id": "cust_123", "holder": "张三", "currency": "CNY", "initial_balance": "1000"}),
        )
        .await;
    expect(&opened, 201, "open");
    assert_eq!(opened.json()["balance"], json!("1000.00"));
    for (id, initial) in [("merchant", "0"), ("acct_b", "0"), ("acct_c", "0")] {
        expect(
            &c.post_json("/accounts", &json!({"account_id": id, "holder": "商户", "initial_balance": initial})).await,
            201,
            id,
        );
    }
    let dep = c.post_json("/accounts/cust_123/deposit", &json!({"amount": "500", "description": "工资"})).await;
    expect(&dep, 200, "deposit");
    assert_eq!(dep.json()["balance"], json!("1500.00"));
    expect(&c.post_json("/accounts/cust_123/withdraw", &json!({"amount": "100.50"})).await, 200, "withdraw");
    let t = c.post_json("/accounts/cust_123/transfer", &json!({"to": "acct_b", "amount": "50"})).await;
    expect(&t, 202, "transfer");
    assert!(t.json()["transfer_id"].as_str().is_some());
    expect(&c.post_json("/accounts/acct_c/freeze", &json!({"reason": "audit"})).await, 200, "freeze");
    expect(&c.post("/accounts/acct_c/unfreeze", "application/json", b"").await, 200, "unfreeze");
    expect(&c.post("/accounts/acct_c/close", "application/json", b"").await, 200, "close");
    // The transfer saga credits acct_b over Kafka.
    let credited = wait_until_async(Duration::from_secs(60), || {
        let reader = reader.clone();
        async move { reader.get("/accounts/acct_b").await.json()["balance"] == json!("50.00") }
    })
    .await;
    assert!(credited, "the transfer saga credited acct_b");
    let events = reader.get("/accounts/cust_123/events").await;
    expect(&events, 200, "events");
    assert!(events.json().as_array().is_some_and(|e| e.len() >= 4), "{}", events.text());

    // --- orders, with the payment saga over Kafka.
    order_paid(&c, &reader, "order_001").await;
    let shipped = c.post_json("/orders/order_001/ship", &json!({"address": "北京市朝阳区建国路88号"})).await;
    expect(&shipped, 200, "ship");
    expect(&c.post("/orders/order_001/deliver", "application/json", b"").await, 200, "deliver");
    let second = json!({"order_id": "order_002", "customer_id": "cust_123", "name": "张三", "email": "zhangsan@example.com", "phone": "13800138000"});
    expect(&c.post_json("/orders", &second).await, 201, "second order");
    expect(&c.post_json("/orders/order_002/cancel", &json!({"reason": "changed my mind"})).await, 202, "cancel");
    let mine = reader.get("/orders?customer_id=cust_123").await;
    expect(&mine, 200, "by customer");
    let ids: BTreeSet<String> = mine
        .json()
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|o| o["order_id"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(ids, BTreeSet::from(["order_001".to_owned(), "order_002".to_owned()]));
    let today = chrono::Utc::now().date_naive().to_string();
    let days = reader.get(&format!("/daily-orders?from={today}")).await;
    expect(&days, 200, "daily orders");
    assert_eq!(
        (days.json()[0]["created"].clone(), days.json()[0]["paid"].clone()),
        (json!(2), json!(1)),
        "{}",
        days.text()
    );
    let bad_day = reader.get("/daily-orders?from=yesterday").await;
    expect(&bad_day, 422, "a day that is not a date");
    assert_eq!(bad_day.json()["error"]["field"], json!("from"), "{}", bad_day.text());
    expect(&reader.get("/daily-orders?from=2026-12-02&to=2026-12-01").await, 422, "a range that ends before it starts");

    // --- the orders projection: status, rebuild while serving, resume.
    let statuses = reader.get("/projections").await;
    expect(&statuses, 200, "projections");
    assert_eq!(statuses.json()[0]["name"], json!("orders.by_customer"), "{}", statuses.text());
    let one = reader.get("/projections/orders.by_customer").await;
    expect(&one, 200, "one projection");
    assert!(one.json()["parked"].is_null() && one.json()["position"].as_u64() > Some(1), "{}", one.text());
    assert_eq!(reader.get("/projections/orders.nope").await.error_code(), "not_found");
    expect(&reader.post("/projections/orders.by_customer/rebuild", "application/json", b"").await, 403, "read scope");
    let rebuilt = c.post("/projections/orders.by_customer/rebuild", "application/json", b"").await;
    expect(&rebuilt, 200, "rebuild");
    let (events, position) = (rebuilt.json()["events"].as_u64(), rebuilt.json()["position"].as_u64());
    assert!(events >= Some(8) && events.map(|e| e + 1) == position, "{}", rebuilt.text());
    assert_eq!(
        reader.get("/orders?customer_id=cust_123").await.json(),
        mine.json(),
        "the same answers after the switch"
    );
    let resume = c.post("/projections/orders.by_customer/resume", "application/json", b"").await;
    expect(&resume, 409, "resume when not parked");
    assert_eq!(resume.error_code(), "not_parked");
    let gauges = metrics(&open).await;
    assert!(
        sum(&gauges, "platform_projection_position", &["projection=\"orders.by_customer\""]) > 1.0,
        "the projection's position in /metrics"
    );
    assert_eq!(sum(&gauges, "platform_projection_parked", &[]), 0.0);

    // --- registry.
    // The orders service announces the same product on the bus at start:
    // whichever comes first registers it, the other changes nothing.
    let reg = c.post("/registry/contracts", "application/yaml", orders::customers::PRODUCT_DOCUMENTS.as_bytes()).await;
    assert!(matches!(reg.status, 200 | 201), "register: {}", reg.text());
    let again =
        c.post("/registry/contracts", "application/yaml", orders::customers::PRODUCT_DOCUMENTS.as_bytes()).await;
    expect(&again, 200, "registering the same documents again changes nothing");
    let products = reader.get("/registry/products").await;
    expect(&products, 200, "products");
    assert_eq!(products.json()[0]["id"], json!("customer_data_v1"));
    expect(&reader.get("/registry/products/customer_data_v1").await, 200, "product");
    expect(&reader.get("/registry/products/customer_data_v1/quality").await, 200, "quality");
    expect(&reader.get("/registry/products/customer_data_v1/query/get_all_customers").await, 200, "query");
    let found = reader.get("/registry/search?q=customer&limit=5").await;
    expect(&found, 200, "search");
    assert_eq!(found.json()["hits"][0]["id"], json!("customer_data_v1"));
    let exported = reader.get("/registry/contracts/customer_data_v1").await;
    expect(&exported, 200, "export");
    let yaml = exported.text();
    assert!(yaml.contains("customer_data_v1"));
    let diff = c.post_json("/registry/diff", &json!({"old": yaml, "new": yaml})).await;
    expect(&diff, 200, "diff");
    assert_eq!(diff.json()["changes"], json!([]));

    // --- time series: line protocol, gzip, a partial write, queries.
    let lines = "cpu,host=server01 usage_user=12.5 1700000000\ncpu,host=server02 usage_user=40 1700000001\n";
    expect(&c.post("/write?db=metrics&precision=s", "text/plain", lines.as_bytes()).await, 204, "write");
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(b"cpu,host=server01 usage_user=13.5 1700000060\n").expect("gzip");
    let gz = gz.finish().expect("gzip");
    let zipped = c.send("POST", "/api/v2/write?precision=s", &[("Content-Encoding", "gzip")], &gz).await.expect("send");
    expect(&zipped, 204, "gzip write");
    let partial = c
        .post(
            "/write?precision=s",
            "text/plain",
            b"cpu,host=server03 usage_user=1 1700000100\ncpu,host=x usage_user= 5\n\
              cpu,host=server04,rack=r1 usage_user=2 1700000101\n",
        )
        .await;
    expect(&partial, 400, "partial write");
    let pj = partial.json();
    assert_eq!(pj["error"]["code"], json!("partial_write"));
    assert_eq!(pj["rejected"].as_array().map(Vec::len), Some(2), "a bad line and a tag key the schema lacks: {pj}");
    assert_eq!(pj["points_written"], json!(1), "the good line was written");
    let q = reader.get("/ts/query?series=cpu_usage_user&from=1699999999000000000&to=1700000200000000000").await;
    expect(&q, 200, "query");
    assert!(q.json()["raw"][0]["points"].as_array().is_some_and(|p| !p.is_empty()), "raw points: {}", q.text());
    let b = reader
        .get("/ts/query?series=cpu_usage_user&from=1699999999000000000&to=1700000200000000000&every=1h&agg=count")
        .await;
    expect(&b, 200, "aggregate query");
    assert!(b.json()["buckets"]["groups"].is_array(), "buckets: {}", b.text());
    let last = reader.get("/ts/series/cpu_usage_user/last?where=host%3Dserver01").await;
    expect(&last, 200, "last");
    assert_eq!(last.json()[0]["value"], json!(13.5), "{}", last.text());
    expect(&reader.get("/ts/stats").await, 200, "stats");

    // --- lake: bronze fills from the bus.
    let filled = wait_until_async(Duration::from_secs(90), || {
        let reader = reader.clone();
        async move {
            let t = reader.get("/lake/tables").await;
            t.status == 200
                && t.json()
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|t| t["table"] == json!("bronze.events") && t["rows"].as_u64() > Some(0))
        }
    })
    .await;
    assert!(filled, "bronze.events took the bus's events: {}", reader.get("/lake/tables").await.text());
    expect(&reader.get("/lake/tables/bronze.events/history?limit=3").await, 200, "history");
    let counted = reader.post_json("/lake/sql", &json!({"sql": "SELECT COUNT(*) AS n FROM bronze.events"})).await;
    expect(&counted, 200, "sql with the read scope");
    assert!(counted.json()["rows"][0]["n"].as_u64() > Some(0), "{}", counted.text());
    expect(&reader.post("/lake/refine", "application/json", b"").await, 403, "refining needs the write scope");
    let refined = c.post("/lake/refine", "application/json", b"").await;
    expect(&refined, 200, "refine");
    assert!(refined.json()["silver"]["bronze_rows"].as_u64() > Some(0), "{}", refined.text());
    let last = reader.get("/lake/refine").await;
    assert_eq!(last.json()["runs"], json!(1), "{}", last.text());
    let orders = reader.post_json("/lake/sql", &json!({"sql": "SELECT COUNT(*) AS n FROM silver.orders"})).await;
    assert!(orders.json()["rows"][0]["n"].as_u64() > Some(0), "silver.orders filled: {}", orders.text());

    // --- bad input: 4xx with a JSON error naming the problem.
    let bad = |r: &super::http::Reply, status: u16, code: &str, what: &str| {
        expect(r, status, what);
        assert_eq!(r.error_code(), code, "{what}: {}", r.text());
    };
    bad(&c.post("/orders", "application/json", b"{\"order_id\": ").await, 400, "malformed_json", "truncated JSON");
    let r =
        c.post_json("/orders/order_002/items", &json!({"product_id": "p", "quantity": "two", "unit_price": "1"})).await;
    bad(&r, 422, "invalid_field", "wrong type");
    assert_eq!(r.json()["error"]["field"], json!("quantity"));
    let profile = json!({"name": "张三", "email": "zhangsan@example.com", "segment": "premium"});
    let put_json = |body: Value| {
        let c = c.clone();
        async move {
            let bytes = body.to_string().into_bytes();
            c.send("PUT", "/customers/cust_123", &[("Content-Type", "application/json")], &bytes).await.expect("PUT")
        }
    };
    let put = put_json(profile).await;
    expect(&put, 200, "register the customer");
    assert_eq!(put.json()["status"], json!("active"));
    expect(&reader.get("/customers/cust_123").await, 200, "the customer");
    bad(&reader.get("/customers/nobody").await, 404, "not_found", "unknown customer");
    let wrong = json!({"name": "张三", "email": "not-an-email", "segment": "premium"});
    let r = put_json(wrong).await;
    bad(&r, 422, "invalid_value", "a bad email");
    assert_eq!(r.json()["error"]["field"], json!("email"), "{}", r.text());
    let r = c.post_json("/orders", &json!({"name": "张三", "email": "a@b.c", "phone": "13800138000"})).await;
    bad(&r, 422, "invalid_field", "missing field");
    assert_eq!(r.json()["error"]["field"], json!("customer_id"));
    let r = c.post_json("/accounts/cust_123/deposit", &json!({"amount": 5})).await;
    bad(&r, 422, "invalid_field", "a float for money");
    assert_eq!(r.json()["error"]["field"], json!("amount"));
    let r = c.post_json("/accounts/cust_123/withdraw", &json!({"amount": "abc"})).await;
    bad(&r, 422, "invalid_field", "not an amount");
    assert_eq!(r.json()["error"]["field"], json!("amount"));
    bad(&c.post_json("/accounts/cust_123/withdraw", &json!({"amount": "99999"})).await, 409, "refused", "overdraft");
    bad(&reader.get("/orders/nope").await, 404, "not_found", "unknown order");
    bad(&c.post_json("/accounts/nope/deposit", &json!({"amount": "1"})).await, 404, "not_found", "unknown account");
    bad(&reader.get("/lake/tables/silver.nope/history").await, 404, "not_found", "unknown table");
    bad(&reader.get("/ts/series/nope/last").await, 404, "not_found", "unknown series");
    bad(&reader.get("/registry/products/nope").await, 404, "not_found", "unknown product");
    bad(&reader.get("/orders").await, 422, "invalid_field", "by customer without a customer");
    bad(&reader.get("/registry/search?q=x&limit=lots").await, 422, "invalid_field", "a limit that is not a number");
    bad(&c.post("/write?precision=hours", "text/plain", b"x v=1").await, 422, "invalid_field", "precision");
    bad(&c.post("/registry/contracts", "application/yaml", b"kind: [").await, 422, "invalid_document", "bad YAML");
    bad(
        &c.post_json("/orders/order_001/items", &json!({"product_id": "p", "quantity": 1, "unit_price": "1"})).await,
        409,
        "refused",
        "items on a delivered order",
    );
    let big = vec![b'x'; 70_000];
    bad(&c.post("/orders", "application/json", &big).await, 413, "body_too_large", "oversized body");
    for sql in [
        "DROP TABLE bronze.events",
        "INSERT INTO bronze.events SELECT * FROM bronze.events",
        "CREATE TABLE gold.x AS SELECT 1",
    ] {
        bad(&reader.post_json("/lake/sql", &json!({"sql": sql})).await, 400, "not_a_query", sql);
    }
    bad(&reader.post_json("/lake/sql", &json!({"sql": "SELEC 1"})).await, 400, "invalid_sql", "bad SQL");
    bad(&open.get("/orders/order_001").await, 401, "unauthorized", "no token");
    assert_eq!(open.get("/orders/order_001").await.header("www-authenticate"), Some("Bearer"));
    bad(&open.with_token("guess").get("/orders/order_001").await, 401, "unauthorized", "unknown token");
    bad(
        &reader.post_json("/accounts/cust_123/deposit", &json!({"amount": "1"})).await,
        403,
        "forbidden",
        "read token writes",
    );
    bad(&reader.get("/no/such/route").await, 404, "not_found", "unknown route");
    // Still serving, and nothing refused was stored.
    expect(&open.get("/healthz").await, 200, "healthz after bad input");
    let account = reader.get("/accounts/cust_123").await;
    expect(&account, 200, "balance");
    // 1000 + 500 - 100.50 - 50 (transfer) - 199.98 (order_001, paid from the
    // customer's account): the refused requests moved nothing.
    assert_eq!(account.json()["balance"], json!("1149.52"), "only the accepted movements count");

    // --- metrics moved with the traffic.
    let after = metrics(&open).await;
    let created_orders = |m: &std::collections::BTreeMap<String, f64>| {
        sum(m, "platform_http_requests_total", &["route=\"/orders\"", "method=\"POST\"", "status=\"201\""])
    };
    assert_eq!(created_orders(&after) - created_orders(&before), 2.0);
    assert!(sum(&after, "platform_http_requests_total", &["status=\"422\""]) >= 6.0);
    assert!(sum(&after, "platform_http_request_duration_seconds_count", &["route=\"/accounts/{id}/deposit\""]) >= 1.0);
    assert!(
        sum(&after, "platform_events_handled_total", &["group=\"accounts.sagas\""])
            > sum(&before, "platform_events_handled_total", &["group=\"accounts.sagas\""])
    );
    assert!(sum(&after, "platform_outbox_published_total", &["context=\"orders\""]) >= 4.0);
    assert!(after.keys().any(|k| k.starts_with("platform_outbox_lag_events{")));
    assert!(after.keys().any(|k| k.starts_with("platform_events_dead_lettered_total{")));
    let lagged = wait_until_async(Duration::from_secs(30), || {
        let open = open.clone();
        async move { metrics(&open).await.keys().any(|k| k.starts_with("platform_consumer_lag_records{")) }
    })
    .await;
    assert!(lagged, "Kafka reported the consumer lag");

    let mut served = served;
    let status = served.terminate(Duration::from_secs(60));
    assert_eq!(status.code(), Some(0), "exit after SIGTERM; log:\n{}", served.log());
    std::fs::remove_dir_all(&data).ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_during_load_loses_no_acknowledged_request() {
    let _heavy = super::support::heavy().await;
    let data = temp("term");
    let prefix = format!("{}.", unique("term"));
    let mut served = Served::start(&["orders", "accounts"], &data, &prefix, &[]).await;
    let client = served.client();
    let acked: Arc<Mutex<Vec<String>>> = Arc::default();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut writers = Vec::new();
    for w in 0..6 {
        let (client, acked, stop) = (client.clone(), Arc::clone(&acked), Arc::clone(&stop));
        writers.push(tokio::spawn(async move {
            let mut refused_after_stop = 0u32;
            for n in 0.. {
                let id = format!("load_{w}_{n}");
                let body = json!({"order_id": id, "customer_id": "cust_9", "name": "张三", "email": "zhangsan@example.com", "phone": "13800138000"});
                match client.send("POST", "/orders", &[("Content-Type", "application/json")], body.to_string().as_bytes()).await {
                    Ok(r) if r.status == 201 => acked.lock().expect("lock").push(id),
                    Ok(r) => assert!(r.status == 503 || stop.load(std::sync::atomic::Ordering::Relaxed), "{}: {}", r.status, r.text()),
                    // The listener is closed: the service is going away.
                    Err(_) => {
                        refused_after_stop += 1;
                        if refused_after_stop > 3 {
                            return;
                        }
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                }
            }
        }));
    }
    let enough = wait_until_async(Duration::from_secs(60), || {
        let acked = Arc::clone(&acked);
        async move { acked.lock().expect("lock").len() >= 150 }
    })
    .await;
    assert!(enough, "orders were acknowledged under load");
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let status = tokio::task::block_in_place(|| served.terminate(Duration::from_secs(60)));
    for w in writers {
        w.await.expect("writer");
    }
    let log = served.log();
    assert_eq!(status.code(), Some(0), "exit 0 after SIGTERM; log:\n{log}");
    assert!(log.contains("stopped:"), "it shut down through the graceful path:\n{log}");
    drop(served);

    // Every acknowledged order is stored.
    let acked = acked.lock().expect("lock").clone();
    let orders = platform::commerce::open_orders(&data).expect("open the orders store");
    let mut missing = Vec::new();
    for id in &acked {
        let found: Option<Value> =
            orders.get_by_id(id).await.expect("read").map(|o| platform::orders_cli::order_json(&o));
        if found.is_none() {
            missing.push(id.clone());
        }
    }
    assert!(missing.is_empty(), "{} of {} acknowledged orders are missing: {missing:?}", missing.len(), acked.len());
    drop(orders);

    // A restart serves them, and relays what the stop left unrelayed.
    let served = Served::start(&["orders"], &data, &prefix, &[]).await;
    let last = acked.last().expect("some acked");
    expect(&served.client().get(&format!("/orders/{last}")).await, 200, "after the restart");
    let relayed = wait_until_async(Duration::from_secs(30), || {
        let c = served.client();
        async move { sum(&metrics(&c).await, "platform_outbox_lag_events", &["context=\"orders\""]) == 0.0 }
    })
    .await;
    assert!(relayed, "the outbox drained after the restart");
    drop(served);
    std::fs::remove_dir_all(&data).ok();
}

/// A database of its own on the test server (`DATABASE_URL`), so the
/// contexts' fixed schemas (`orders`, `accounts`, `orders_read`,
/// `mesh_registry`) do not meet another test's.
pub struct Database {
    admin: tokio_postgres::Client,
    name: String,
    pub url: String,
}

impl Database {
    pub async fn create() -> Self {
        let base = super::sagas::database_url();
        let (admin, conn) = tokio_postgres::connect(&base, tokio_postgres::NoTls).await.expect("connect to PostgreSQL");
        tokio::spawn(conn);
        let name = format!("serve_{}", uuid::Uuid::now_v7().simple());
        admin.batch_execute(&format!("CREATE DATABASE {name}")).await.expect("create database");
        let (path, query) = base.split_once('?').map_or((base.as_str(), None), |(p, q)| (p, Some(q)));
        let (server, _db) = path.rsplit_once('/').expect("the URL names a database");
        let url = match query {
            Some(q) => format!("{server}/{name}?{q}"),
            None => format!("{server}/{name}"),
        };
        Self { admin, name, url }
    }

    pub async fn drop_it(self) {
        self.admin.batch_execute(&format!("DROP DATABASE {} WITH (FORCE)", self.name)).await.expect("drop database");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_postgresql_every_context_keeps_its_state_in_the_database() {
    let _heavy = super::support::heavy().await;
    let db = Database::create().await;
    let prefix = format!("{}.", unique("pg"));
    let env = [("DATABASE_URL", db.url.as_str())];
    let first = temp("pg-first");
    let mut served = Served::start(&["orders", "accounts", "registry"], &first, &prefix, &env).await;
    let c = served.client();
    let ready = c.get("/readyz").await;
    expect(&ready, 200, "readyz on PostgreSQL");
    for (id, initial) in [("cust_123", "1000"), ("merchant", "0")] {
        let body = json!({"account_id": id, "holder": "张三", "currency": "CNY", "initial_balance": initial});
        expect(&c.post_json("/accounts", &body).await, 201, id);
    }
    order_paid(&c, &c, "order_pg").await;
    let docs = orders::customers::PRODUCT_DOCUMENTS.as_bytes();
    let reg = c.post("/registry/contracts", "application/yaml", docs).await;
    assert!(matches!(reg.status, 200 | 201), "register: {}", reg.text());
    let status = served.terminate(Duration::from_secs(60));
    assert_eq!(status.code(), Some(0), "exit after SIGTERM; log:\n{}", served.log());
    drop(served);

    // A fresh --data directory: whatever answers now came from PostgreSQL.
    let second = temp("pg-second");
    let served = Served::start(&["orders", "accounts", "registry"], &second, &prefix, &env).await;
    let c = served.client();
    let o = c.get("/orders/order_pg").await;
    expect(&o, 200, "the order after the restart");
    assert_eq!((o.json()["order_status"].clone(), o.json()["total_amount"].clone()), (json!("paid"), json!("199.98")));
    let mine = c.get("/orders?customer_id=cust_123").await;
    assert_eq!(mine.json().as_array().map(Vec::len), Some(1), "the read model is in the database: {}", mine.text());
    let cust = c.get("/accounts/cust_123").await;
    assert_eq!(cust.json()["balance"], json!("800.02"), "{}", cust.text());
    let merchant = c.get("/accounts/merchant").await;
    assert_eq!(merchant.json()["balance"], json!("199.98"), "{}", merchant.text());
    let products = c.get("/registry/products").await;
    assert_eq!(products.json()[0]["id"], json!("customer_data_v1"), "{}", products.text());
    let local: Vec<_> =
        std::fs::read_dir(&second).expect("data dir").filter_map(|e| e.ok()).map(|e| e.file_name()).collect();
    assert!(
        local.iter().all(|n| n.to_str().is_some_and(|n| n == "serve.log" || n.starts_with("registry"))),
        "no event store or read model written to the data directory: {local:?}"
    );
    drop(served);
    db.drop_it().await;
    for dir in [first, second] {
        std::fs::remove_dir_all(&dir).ok();
    }
}
