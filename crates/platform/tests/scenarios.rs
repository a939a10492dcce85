//! The seed's figures, as the demo reports them in summary.json, come out
//! of the real contexts: the order's total and status, the account's
//! balance after a reload, the friend's credit, and a workload whose money
//! is conserved with every order in a terminal state.

use accounts::SagaConfig;
use platform::commerce::{Commerce, open_orders};
use platform::node::{BusChoice, Node, open_store};
use platform::scenarios::{self, WorkloadSize};

async fn commerce(dir: &std::path::Path) -> Commerce {
    let node = Node::connect(BusChoice::InProcess).await.expect("node");
    let orders = open_orders(dir).expect("orders");
    let accounts = open_store(dir, "accounts").expect("accounts");
    Commerce::on_node(orders, accounts, node, SagaConfig::default()).await.expect("commerce")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_seed_scenarios_report_the_seed_figures() {
    let dir = std::env::temp_dir().join(format!("platform-scenarios-{}", uuid::Uuid::now_v7().simple()));
    let mut c = commerce(&dir).await;
    let ddm = scenarios::domain_driven_modeling(&mut c).await.expect("order story");
    assert_eq!(ddm["order_status"], "shipped");
    assert_eq!(ddm["total_amount"], "399.97");
    assert_eq!(ddm["shipping_address"], scenarios::SEED_ADDRESS);
    let names: Vec<&str> =
        ddm["generated_events"].as_array().expect("events").iter().filter_map(|e| e["event_type"].as_str()).collect();
    assert_eq!(
        names,
        ["OrderCreated", "OrderItemAdded", "OrderItemAdded", "OrderConfirmed", "OrderPaid", "OrderShipped"]
    );
    assert_eq!(ddm["paid_through_accounts"]["payer_balance"], "600.03");
    assert_eq!(ddm["paid_through_accounts"]["merchant_balance"], "399.97");

    let es = scenarios::event_sourcing(&mut c).await.expect("account story");
    assert_eq!(
        (es["account_holder"].as_str(), es["balance"].as_str(), es["currency"].as_str()),
        (Some("张三"), Some("1000.00"), Some("USD"))
    );
    assert_eq!(es["account_002"]["balance"], "300.00", "the friend was really credited");
    let history: Vec<&str> =
        es["event_history"].as_array().expect("history").iter().filter_map(|e| e["event_type"].as_str()).collect();
    assert_eq!(history, ["AccountCreated", "MoneyDeposited", "MoneyWithdrawn", "MoneyTransferredOut"]);
    let balances = |id: &str| -> Vec<String> {
        es["balance_over_time"][id]
            .as_array()
            .expect(id)
            .iter()
            .filter_map(|b| b["balance"].as_str().map(str::to_owned))
            .collect()
    };
    assert_eq!(balances("account_001"), ["1000.00", "1500.00", "1300.00", "1000.00"], "replayed after each event");
    assert_eq!(balances("account_002"), ["0.00", "300.00"]);

    let size = WorkloadSize { customers: 40, orders: 150, transfers: 60 };
    let w = scenarios::workload(&mut c, size, |_, _, _| {}).await.expect("workload");
    assert_eq!(w["money_conserved"], true, "{w}");
    assert_eq!(w["orders_not_terminal"], 0, "{w}");
    let states = w["orders_per_terminal_state"].as_object().expect("states");
    assert_eq!(states.values().filter_map(|v| v.as_u64()).sum::<u64>(), 150);
    assert!(w["transfers_compensated"].as_u64().unwrap_or(0) > 0, "some transfers fail and are paid back: {w}");
    c.close().await.expect("close");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_data_mesh_answers_from_the_records_that_flowed() {
    let dir = std::env::temp_dir().join(format!("platform-mesh-{}", uuid::Uuid::now_v7().simple()));
    let mut c = commerce(&dir).await;
    let others = vec![timeseries::bus::announcement(&timeseries::scenario::schema()).expect("announcement")];
    let dm = platform::mesh::data_mesh(&mut c, &dir, "", others).await.expect("data mesh");
    assert_eq!(dm["registered_data_product"], "Customer Master Data");
    assert_eq!(dm["customer_data"]["name"], "张三");
    assert_eq!(dm["customer_data"]["email"], "zhangsan@example.com");
    assert_eq!(dm["all_customers"].as_array().map(Vec::len), Some(3));
    assert_eq!(dm["search_results"][0]["name"], "Customer Master Data");
    assert_eq!(dm["records_measured"], 3, "measured on the three seed customers, not a constant");
    assert_eq!(dm["quality_metrics"]["completeness"], 1.0);
    let ids: Vec<&str> = dm["products"].as_array().expect("products").iter().filter_map(|p| p["id"].as_str()).collect();
    assert_eq!(ids, ["customer_data_v1", "timeseries.sensor_temperature"], "every context's products are registered");
    c.close().await.expect("close");
    let _ = std::fs::remove_dir_all(&dir);
}
